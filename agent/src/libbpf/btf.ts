/** Just enough BTF reading to find global variables in a data section by name. */
import { ffi, readMemory, type Ptr } from './ffi.js';

const BTF_KIND_DATASEC = 15;
const BTF_TYPE_SIZE = 12; // struct btf_type { name_off, info, size/type }
const SECINFO_SIZE = 12; // struct btf_var_secinfo { type, offset, size }

/** A global variable's place inside its section's data. */
export interface SectionVariable {
  name: string;
  offset: number;
  size: number;
}

/**
 * Variables of the BTF DATASEC named `section` (e.g. ".rodata"), with the
 * offsets libbpf fixed up at open time. Empty when the section has no BTF.
 */
export function sectionVariables(btf: Ptr, section: string): SectionVariable[] {
  const n = ffi();
  const id = n.btf__find_by_name_kind(btf, section, BTF_KIND_DATASEC);
  if (id <= 0) return [];
  const t = n.btf__type_by_id(btf, id);
  if (t === null) return [];
  const vlen = readMemory(t, BTF_TYPE_SIZE).readUInt32LE(4) & 0xffff;
  const secinfo = readMemory(t + BigInt(BTF_TYPE_SIZE), vlen * SECINFO_SIZE);
  const out: SectionVariable[] = [];
  for (let i = 0; i < vlen; i++) {
    const varId = secinfo.readUInt32LE(i * SECINFO_SIZE);
    const offset = secinfo.readUInt32LE(i * SECINFO_SIZE + 4);
    const size = secinfo.readUInt32LE(i * SECINFO_SIZE + 8);
    const vt = n.btf__type_by_id(btf, varId);
    if (vt === null) continue;
    const name = n.btf__name_by_offset(btf, readMemory(vt, 4).readUInt32LE(0));
    if (name) out.push({ name, offset, size });
  }
  return out;
}
