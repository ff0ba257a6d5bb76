/**
 * Struct layouts shared with bpf/include/shared/*.h. Each TypeScript codec is
 * built from a layout that names the C struct and its fields, so a test can
 * check every layout against the compiled object's BTF (test/bpf/layout.test.ts).
 */
import { struct, type Codec, type FieldSpec, type StructValue } from '../libbpf/index.js';

/** One field: its C name, byte offset and codec. */
export interface FieldLayout { readonly c: string; readonly offset: number; readonly size: number }

/** A C struct as TypeScript sees it. */
export interface StructLayout { readonly cName: string; readonly size: number; readonly fields: readonly FieldLayout[] }

/** Every layout defined through {@link cStruct}, for the BTF drift test. */
export const LAYOUTS: StructLayout[] = [];

/**
 * Defines a codec for C struct `cName` of `size` bytes. `fields` maps each
 * TypeScript name to [C field name, offset, codec]; bytes not listed are padding.
 */
export function cStruct<F extends Record<string, readonly [string, number, Codec<any>]>>(
  cName: string,
  size: number,
  fields: F,
): Codec<StructValue<{ [K in keyof F]: FieldSpec<F[K][2] extends Codec<infer T> ? T : never> }>> {
  const specs: Record<string, { offset: number; codec: Codec<unknown> }> = {};
  const layout: FieldLayout[] = [];
  for (const [name, [c, offset, codec]] of Object.entries(fields)) {
    specs[name] = { offset, codec };
    layout.push({ c, offset, size: codec.size });
  }
  LAYOUTS.push({ cName, size, fields: layout });
  return struct(specs, size) as never;
}
