/** XDP attachments as BPF links (Linux 5.9), in native (driver) or generic (skb) mode. */
import { libbpfError } from './fail.js';
import { closeFd, ffi } from './ffi.js';
import { linkInfoByFd, objPin, type LinkInfo } from './info.js';
import type { Link } from './link.js';
import { device, unpinPath, updateLinkFd } from './link-tcx.js';
import { notSupported, probeXdpLink } from './probe.js';
import type { Program } from './program.js';
import { AttachType } from './types.js';
import { EINVAL, ENOENT, ENODEV, ENOLINK } from '../errors/errno.js';

const XDP_FLAGS_SKB_MODE = 1 << 1;
const XDP_FLAGS_DRV_MODE = 1 << 2;

/** Where XDP runs: in the driver ('native') or after skb allocation ('generic', works on any device). */
export type XdpMode = 'native' | 'generic';

/** A program attached to a device's XDP hook through a link. */
export class XdpLink implements Link {
  readonly kind = 'xdp' as const;
  readonly ifindex: number;
  readonly mode: XdpMode;
  readonly id: number;
  private _programId: number;
  private _fd: number;
  private _pinnedPath: string | undefined;

  private constructor(fd: number, info: LinkInfo, mode: XdpMode, pinnedPath?: string) {
    this._fd = fd;
    this.id = info.id;
    this._programId = info.programId;
    this.ifindex = info.ifindex ?? 0;
    this.mode = mode;
    this._pinnedPath = pinnedPath;
  }

  /** Wraps an XDP link fd (ownership passes to the link); the mode is read back from the device (bpf_xdp_query). */
  static fromFd(fd: number, info: LinkInfo, pinnedPath?: string): XdpLink {
    return new XdpLink(fd, info, xdpModeOf(info.ifindex ?? 0, info.programId), pinnedPath);
  }

  /** See attachXdp(). */
  static attach(prog: Program, ifindex: number, mode: XdpMode, opts: { ifname?: string } = {}): XdpLink {
    // struct bpf_link_create_opts: sz at 0, flags at 8; 64 bytes, the rest zero.
    const o = Buffer.alloc(64);
    o.writeBigUInt64LE(64n, 0);
    o.writeUInt32LE(mode === 'native' ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE, 8);
    const fd = ffi().bpf_link_create(prog.fd, ifindex, AttachType.XDP, o);
    if (fd < 0) {
      if (fd === -EINVAL && !probeXdpLink()) throw notSupported('xdpLink');
      throw libbpfError(`attach xdp (${mode}) to ${device(ifindex, opts.ifname)}: create link`, fd);
    }
    try {
      return new XdpLink(fd, linkInfoByFd(fd), mode);
    } catch (err) {
      closeFd(fd);
      throw err;
    }
  }

  /** Id of the attached program. */
  get programId(): number {
    return this._programId;
  }

  /** The link fd; -1 after close(). */
  get fd(): number {
    return this._fd;
  }

  get pinnedPath(): string | undefined {
    return this._pinnedPath;
  }

  /** Fresh kernel info (a detached link reports ifindex 0). */
  info(): LinkInfo {
    return linkInfoByFd(this._fd);
  }

  pin(path: string): void {
    objPin(this._fd, path, `xdp link ${this.id} on ifindex ${this.ifindex}`);
    this._pinnedPath = path;
  }

  unpin(): void {
    unpinPath(this._pinnedPath, `xdp link ${this.id}`);
    this._pinnedPath = undefined;
  }

  /** Swaps in `prog` atomically (BPF_LINK_UPDATE). */
  update(prog: Program): void {
    updateLinkFd(this._fd, prog, `xdp link ${this.id} on ifindex ${this.ifindex}`);
    this._programId = prog.id;
  }

  /** Detaches from the device (a device already gone counts as detached), unpins, closes. */
  detach(): void {
    if (this._fd >= 0) {
      const rc = ffi().bpf_link_detach(this._fd);
      if (rc !== 0 && rc !== -ENOLINK && rc !== -ENOENT && rc !== -ENODEV) {
        throw libbpfError(`detach xdp link ${this.id} from ifindex ${this.ifindex}`, rc);
      }
    }
    this.unpin();
    this.close();
  }

  close(): void {
    closeFd(this._fd);
    this._fd = -1;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Attaches an XDP program to a device through a link. Native mode needs
 * driver support (EOPNOTSUPP otherwise); generic works everywhere. Throws
 * NotSupportedError before Linux 5.9, SyscallError otherwise (EBUSY when the
 * device already has an XDP program in that mode).
 */
export function attachXdp(prog: Program, ifindex: number, mode: XdpMode, opts: { ifname?: string } = {}): XdpLink {
  return XdpLink.attach(prog, ifindex, mode, opts);
}

/** Which XDP program ids a device runs, per mode (bpf_xdp_query); 0 = none. */
export function xdpQuery(ifindex: number): { native: number; generic: number; offloaded: number } {
  // struct bpf_xdp_query_opts: sz, prog_id, drv_prog_id, hw_prog_id, skb_prog_id, attach_mode; 32 bytes.
  const o = Buffer.alloc(32);
  o.writeBigUInt64LE(32n, 0);
  const rc = ffi().bpf_xdp_query(ifindex, 0, o);
  if (rc !== 0) throw libbpfError(`query xdp programs of ifindex ${ifindex}`, rc);
  return { native: o.readUInt32LE(12), offloaded: o.readUInt32LE(16), generic: o.readUInt32LE(20) };
}

function xdpModeOf(ifindex: number, programId: number): XdpMode {
  if (ifindex === 0) return 'generic';
  const q = xdpQuery(ifindex);
  return q.native === programId ? 'native' : 'generic';
}
