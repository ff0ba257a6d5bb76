/**
 * What every attachment has in common, and re-adopting pinned ones. Each
 * attach kind lives in its own file: link-tcx.ts, link-xdp.ts, link-tc.ts,
 * link-cgroup.ts.
 */
import { PodnetError } from '../errors/index.js';
import { closeFd } from './ffi.js';
import { linkInfoByFd, listObjects, objectKind, objGet, type LinkInfo } from './info.js';
import { CgroupLink } from './link-cgroup.js';
import { TcLegacyLink, isTcLinkRecord } from './link-tc.js';
import { TcxLink } from './link-tcx.js';
import { XdpLink } from './link-xdp.js';
import type { Program } from './program.js';

/** How a program is attached: a tcx link, an XDP link, a legacy clsact/cls_bpf filter, or a cgroup link. */
export type LinkKind = 'tcx' | 'xdp' | 'tc' | 'cgroup';

/** A program attached to a network device or (kind 'cgroup') to a cgroup. */
export interface Link extends Disposable {
  readonly kind: LinkKind;
  /** The device it hooks; 0 for cgroup links. */
  readonly ifindex: number;
  /** Kernel link id (tcx and xdp; legacy tc filters have none). */
  readonly id?: number;
  /** Id of the attached program (changes with update()). */
  readonly programId: number;
  /** bpffs path this attachment was pinned at or opened from, if any. */
  readonly pinnedPath: string | undefined;
  /** Keeps the attachment after this process lets go, by pinning it at a bpffs path. */
  pin(path: string): void;
  /** Removes the pin (no-op when not pinned); the attachment then lives as long as this handle. */
  unpin(): void;
  /** Swaps in another program atomically: no packet sees the hook empty. */
  update(prog: Program): void;
  /** Removes the attachment from the device now, pinned or not, and releases this handle. */
  detach(): void;
  /** Releases this handle. An unpinned tcx/xdp link is detached by that; a pinned one and a legacy filter stay. */
  close(): void;
}

/**
 * Re-opens an attachment pinned by Link.pin(): tcx, xdp and cgroup links directly,
 * legacy tc filters through the record pinned for them (then confirmed with
 * bpf_tc_query). Throws SyscallError when nothing is pinned there,
 * PodnetError when the pin is something else.
 */
export function openPinnedLink(path: string): Link {
  const fd = objGet(path);
  try {
    const kind = objectKind(fd);
    if (kind === 'link') {
      const info = linkInfoByFd(fd);
      if (info.type === 'tcx') return TcxLink.fromFd(fd, info, path);
      if (info.type === 'xdp') return XdpLink.fromFd(fd, info, path);
      if (info.type === 'cgroup') return CgroupLink.fromFd(fd, info, path);
      throw new PodnetError('INVALID_ARGUMENT', `open pinned link ${path}: it is a ${info.type} link; podnet handles tcx, xdp and cgroup links`);
    }
    if (kind === 'map' && isTcLinkRecord(fd)) {
      // The record is only read; the filter itself needs no fd.
      const link = TcLegacyLink.fromRecord(fd, path);
      closeFd(fd);
      return link;
    }
    throw new PodnetError('INVALID_ARGUMENT', `open pinned link ${path}: it is a pinned ${kind}, not a link`);
  } catch (err) {
    closeFd(fd);
    throw err;
  }
}

/** Swaps the program behind any attachment (BPF_LINK_UPDATE for links, a replacing filter for legacy tc). */
export function updateLink(link: Link, prog: Program): void {
  link.update(prog);
}

/** Kernel info of a link fd: type, program, and for tcx/xdp links the ifindex (and tcx direction). */
export function linkInfo(fd: number): LinkInfo {
  return linkInfoByFd(fd);
}

/** Every BPF link in the kernel (walks BPF_LINK_GET_NEXT_ID); shows tcx links that iproute2 6.1 cannot. */
export function listLinks(): LinkInfo[] {
  return listObjects('link', linkInfoByFd);
}
