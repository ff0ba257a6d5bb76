/**
 * Numeric constants from the Linux UAPI headers (linux/netlink.h, rtnetlink.h,
 * if_link.h, if_addr.h, neighbour.h, veth.h) and the libc values the socket
 * and namespace layers need. The libc values are the same on x86-64 and arm64.
 * Names follow the kernel headers so they can be grepped side by side.
 */

/** nlmsg_type: no operation. */
export const NLMSG_NOOP = 1;
/** nlmsg_type: an error or, with errno 0, an acknowledgement. */
export const NLMSG_ERROR = 2;
/** nlmsg_type: end of a multi-part dump. */
export const NLMSG_DONE = 3;
/** nlmsg_type: data was lost. */
export const NLMSG_OVERRUN = 4;

/** nlmsg_flags: this is a request. */
export const NLM_F_REQUEST = 0x01;
/** nlmsg_flags: part of a multi-part reply that ends with NLMSG_DONE. */
export const NLM_F_MULTI = 0x02;
/** nlmsg_flags: ask the kernel to acknowledge the request. */
export const NLM_F_ACK = 0x04;
/** nlmsg_flags: the dump changed while it was read, its content may be inconsistent. */
export const NLM_F_DUMP_INTR = 0x10;
/** nlmsg_flags: dump every object (NLM_F_ROOT | NLM_F_MATCH). */
export const NLM_F_DUMP = 0x300;
/** nlmsg_flags of a new request: replace an existing object. */
export const NLM_F_REPLACE = 0x100;
/** nlmsg_flags of a new request: fail when the object exists. */
export const NLM_F_EXCL = 0x200;
/** nlmsg_flags of a new request: create the object when it does not exist. */
export const NLM_F_CREATE = 0x400;
/** nlmsg_flags of an NLMSG_ERROR: the echoed request was cut down to its header. */
export const NLM_F_CAPPED = 0x100;
/** nlmsg_flags of an NLMSG_ERROR: extended-ack TLVs follow the echoed request. */
export const NLM_F_ACK_TLVS = 0x200;

/** Size of struct nlmsghdr. */
export const NLMSG_HDRLEN = 16;
/** Size of struct nlattr (rtattr). */
export const NLA_HDRLEN = 4;
/** nla_type flag: the payload is a nest of attributes. */
export const NLA_F_NESTED = 0x8000;
/** nla_type flag: the payload is in network byte order. */
export const NLA_F_NET_BYTEORDER = 0x4000;
/** Mask that keeps the attribute type without its flags. */
export const NLA_TYPE_MASK = 0x3fff;

/** Extended-ack TLV inside NLMSG_ERROR: the kernel's message string. */
export const NLMSGERR_ATTR_MSG = 1;
/** Extended-ack TLV inside NLMSG_ERROR: offset of the offending attribute in the request. */
export const NLMSGERR_ATTR_OFFS = 2;

/** rtnetlink type: create or change a link. */
export const RTM_NEWLINK = 16;
/** rtnetlink type: delete a link. */
export const RTM_DELLINK = 17;
/** rtnetlink type: get or dump links. */
export const RTM_GETLINK = 18;
/** rtnetlink type: add an address. */
export const RTM_NEWADDR = 20;
/** rtnetlink type: delete an address. */
export const RTM_DELADDR = 21;
/** rtnetlink type: dump addresses. */
export const RTM_GETADDR = 22;
/** rtnetlink type: add or replace a route. */
export const RTM_NEWROUTE = 24;
/** rtnetlink type: delete a route. */
export const RTM_DELROUTE = 25;
/** rtnetlink type: dump routes. */
export const RTM_GETROUTE = 26;
/** rtnetlink type: add or replace a neighbour. */
export const RTM_NEWNEIGH = 28;
/** rtnetlink type: delete a neighbour. */
export const RTM_DELNEIGH = 29;
/** rtnetlink type: dump neighbours. */
export const RTM_GETNEIGH = 30;

/** Address family: unspecified (links, dumps of every family). */
export const AF_UNSPEC = 0;
/** Address family: IPv4. */
export const AF_INET = 2;
/** Address family: IPv6. */
export const AF_INET6 = 10;
/** Address family: netlink sockets. */
export const AF_NETLINK = 16;

/** Link attribute: hardware address. */
export const IFLA_ADDRESS = 1;
/** Link attribute: broadcast hardware address. */
export const IFLA_BROADCAST = 2;
/** Link attribute: interface name (NUL-terminated). */
export const IFLA_IFNAME = 3;
/** Link attribute: MTU (u32). */
export const IFLA_MTU = 4;
/** Link attribute: ifindex of the lower or peer device (u32). */
export const IFLA_LINK = 5;
/** Link attribute: ifindex of the master device (u32). */
export const IFLA_MASTER = 10;
/** Link attribute: RFC 2863 operational state (u8). */
export const IFLA_OPERSTATE = 16;
/** Link attribute: nest holding the kind and kind-specific data. */
export const IFLA_LINKINFO = 18;
/** Link attribute: fd of the network namespace to create or move the link in (u32). */
export const IFLA_NET_NS_FD = 28;
/** Link attribute: extended info filter mask (u32). */
export const IFLA_EXT_MASK = 29;
/** Link attribute: netns id, as seen from this namespace, of the peer's namespace (s32). */
export const IFLA_LINK_NETNSID = 37;
/** Inside IFLA_LINKINFO: kind string ("veth", "bridge", ...). */
export const IFLA_INFO_KIND = 1;
/** Inside IFLA_LINKINFO: kind-specific nest. */
export const IFLA_INFO_DATA = 2;
/** Inside a veth's IFLA_INFO_DATA: an ifinfomsg followed by the peer's attributes. */
export const VETH_INFO_PEER = 1;

/** ifi_flags: administratively up. */
export const IFF_UP = 0x1;
/** ifi_flags: loopback device. */
export const IFF_LOOPBACK = 0x8;
/** ifi_flags: carrier is up. */
export const IFF_LOWER_UP = 0x10000;

/** ifi_type of the loopback device (linux/if_arp.h). */
export const ARPHRD_LOOPBACK = 772;

/** Address attribute: prefix (peer) address. */
export const IFA_ADDRESS = 1;
/** Address attribute: local address. */
export const IFA_LOCAL = 2;
/** Address attribute: label (NUL-terminated). */
export const IFA_LABEL = 3;
/** Address attribute: broadcast address. */
export const IFA_BROADCAST = 4;
/** Address attribute: u32 flags that extend the u8 ifa_flags. */
export const IFA_FLAGS = 8;
/** Address flag: do not install the prefix route that normally comes with the address. */
export const IFA_F_NOPREFIXROUTE = 0x200;

/** Route attribute: destination prefix. */
export const RTA_DST = 1;
/** Route attribute: source prefix. */
export const RTA_SRC = 2;
/** Route attribute: output ifindex (u32). */
export const RTA_OIF = 4;
/** Route attribute: gateway address. */
export const RTA_GATEWAY = 5;
/** Route attribute: metric (u32). */
export const RTA_PRIORITY = 6;
/** Route attribute: preferred source address. */
export const RTA_PREFSRC = 7;
/** Route attribute: table id (u32), for ids that do not fit rtm_table. */
export const RTA_TABLE = 15;

/** Route scope: global. */
export const RT_SCOPE_UNIVERSE = 0;
/** Route scope: on the attached link. */
export const RT_SCOPE_LINK = 253;
/** Route scope: this host. */
export const RT_SCOPE_HOST = 254;
/** Route scope in delete requests: match a route of any scope. */
export const RT_SCOPE_NOWHERE = 255;

/** Route table: unspecified (all tables in dumps). */
export const RT_TABLE_UNSPEC = 0;
/** Route table: main. */
export const RT_TABLE_MAIN = 254;
/** Route table: local. */
export const RT_TABLE_LOCAL = 255;

/** Route type: a gateway or direct route. */
export const RTN_UNICAST = 1;
/** Route protocol: installed by configuration tools (the default of `ip route`). */
export const RTPROT_BOOT = 3;
/** Route protocol: installed by an administrator. */
export const RTPROT_STATIC = 4;

/** Next-hop flag: treat the gateway as directly on the link. */
export const RTNH_F_ONLINK = 4;

/** Neighbour attribute: protocol address. */
export const NDA_DST = 1;
/** Neighbour attribute: link-layer address. */
export const NDA_LLADDR = 2;
/** Neighbour state: resolution in progress. */
export const NUD_INCOMPLETE = 0x01;
/** Neighbour state: confirmed reachable. */
export const NUD_REACHABLE = 0x02;
/** Neighbour state: stale, usable until probed. */
export const NUD_STALE = 0x04;
/** Neighbour state: waiting before probing. */
export const NUD_DELAY = 0x08;
/** Neighbour state: being probed. */
export const NUD_PROBE = 0x10;
/** Neighbour state: resolution failed. */
export const NUD_FAILED = 0x20;
/** Neighbour state: no resolution needed. */
export const NUD_NOARP = 0x40;
/** Neighbour state: static entry, never expires. */
export const NUD_PERMANENT = 0x80;

/** Netlink protocol of rtnetlink sockets. */
export const NETLINK_ROUTE = 0;
/** socket() type: raw datagrams. */
export const SOCK_RAW = 3;
/** socket() type flag: close on exec. */
export const SOCK_CLOEXEC = 0o2000000;
/** setsockopt level: socket. */
export const SOL_SOCKET = 1;
/** Socket option: send buffer size. */
export const SO_SNDBUF = 7;
/** Socket option: receive buffer size. */
export const SO_RCVBUF = 8;
/** Socket option: receive timeout (struct timeval). */
export const SO_RCVTIMEO = 20;
/** setsockopt level: netlink. */
export const SOL_NETLINK = 270;
/** Netlink option: echo only the request header in error messages. */
export const NETLINK_CAP_ACK = 10;
/** Netlink option: extended acknowledgements (error strings). */
export const NETLINK_EXT_ACK = 11;
/** Netlink option: strict checking of dump requests (kernel-side filtering). */
export const NETLINK_GET_STRICT_CHK = 12;
/** recv() flag: return the real length of a truncated datagram. */
export const MSG_TRUNC = 0x20;

/** unshare()/setns() flag: network namespace. */
export const CLONE_NEWNET = 0x40000000;
/** open() flag: read only. */
export const O_RDONLY = 0;
/** open() flag: create. */
export const O_CREAT = 0o100;
/** open() flag: fail when the file exists. */
export const O_EXCL = 0o200;
/** open() flag: close on exec. */
export const O_CLOEXEC = 0o2000000;
/** O_NONBLOCK: opening a FIFO by mistake must not hang. */
export const O_NONBLOCK = 0o4000;
/** ioctl NS_GET_NSTYPE = _IO(0xb7, 0x3): the CLONE_NEW* type of an nsfs file (Linux >= 4.11). */
export const NS_GET_NSTYPE = 0xb703;
/** flock(2) operations. */
export const LOCK_EX = 2;
export const LOCK_NB = 4;
/** mount() flag: bind mount. */
export const MS_BIND = 0x1000;
/** mount() flag: recursive. */
export const MS_REC = 0x4000;
/** mount() flag: shared propagation. */
export const MS_SHARED = 0x100000;
/** umount2() flag: lazy detach. */
export const MNT_DETACH = 2;
