/** The agent's config file: YAML or JSON, camelCase or kebab-case keys from the settings table. */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '../errors/index.js';
import { KNOWN_KEYS, type RawSettings } from './settings.js';

/** Reads a YAML or JSON config file into raw settings (camelCase or kebab-case keys). @throws ConfigError */
export function readConfigFile(path: string): RawSettings {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError('config', `read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
  let doc: unknown;
  try {
    doc = parseYaml(text); // JSON is valid YAML
  } catch (err) {
    throw new ConfigError('config', `parse ${path}: ${(err as Error).message}`, { cause: err });
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError('config', `${path}: expected a mapping of settings`);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(doc)) {
    const key = k.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    if (!KNOWN_KEYS.has(key)) throw new ConfigError(k, `unknown setting in ${path}`);
    out[key] = v;
  }
  return out;
}
