/** Typed records for links, addresses, routes and neighbours as rtnetlink reports them. */

/** IP version of an address, route or neighbour. */
export type Family = 4 | 6;

/** Scope of an address or route: the named ones, or the raw rt_scope value. */
export type Scope = 'universe' | 'link' | 'host' | number;

/** Fields every link has, whatever its kind. */
export interface LinkBase {
  /** Interface index, unique inside the link's network namespace. */
  index: number;
  name: string;
  mtu: number;
  /** Hardware address as 'aa:bb:cc:dd:ee:ff'; '' when the link has none. */
  mac: string;
  /** Administratively up (IFF_UP). */
  up: boolean;
  /** RFC 2863 state: 'unknown', 'notpresent', 'down', 'lowerlayerdown', 'testing', 'dormant' or 'up'. */
  operState: string;
  /** Raw ifi_flags (IFF_*). */
  flags: number;
  /** ifindex of the bridge or bond this link is enslaved to. */
  masterIndex?: number;
  /** netns id (as seen from this namespace) of the namespace the peer or lower device lives in. */
  netnsId?: number;
}

/** A veth end; `peerIndex` is the other end's ifindex, in the namespace `netnsId` names when set. */
export interface VethLink extends LinkBase {
  kind: 'veth';
  peerIndex?: number;
}

/** Any other link; `kind` is IFLA_INFO_KIND, 'loopback' for lo, 'device' when the kernel reports no kind. */
export interface OtherLink extends LinkBase {
  // `string & {}` keeps the named kinds visible to editors while accepting any kind.
  kind: 'device' | 'bridge' | 'dummy' | 'loopback' | (string & {});
  /**
   * Never set. An open-ended `kind` also admits 'veth', so `kind === 'veth'`
   * cannot narrow the union; declaring the field here keeps `link.peerIndex` readable on any Link.
   */
  peerIndex?: undefined;
}

/** A network interface; narrow on `kind === 'veth'` for veth-only fields. */
export type Link = VethLink | OtherLink;

/** An interface address. */
export interface Addr {
  index: number;
  family: Family;
  /** The local address (IFA_LOCAL, or IFA_ADDRESS when the kernel sends only that, as for IPv6). */
  address: string;
  prefixLen: number;
  scope: Scope;
  label?: string;
}

/** A route. `dst` undefined with `dstLen` 0 is the default route. */
export interface Route {
  family: Family;
  dst?: string;
  dstLen: number;
  gateway?: string;
  /** Output ifindex. */
  oif?: number;
  scope: Scope;
  /** Table id (254 is main). */
  table: number;
  /** rtm_protocol (3 boot, 4 static, 2 kernel, ...). */
  protocol: number;
  /** rtm_type (1 unicast, 2 local, ...). */
  type: number;
  /** The gateway is used as if on the link, without a covering route (RTNH_F_ONLINK). */
  onlink: boolean;
  /** Preferred source address. */
  src?: string;
  /** Metric. */
  priority?: number;
}

/** A neighbour (ARP or NDP) entry. */
export interface Neigh {
  index: number;
  family: Family;
  ip: string;
  /** Link-layer address; absent while unresolved. */
  mac?: string;
  /** Raw NUD_* state bits. */
  state: number;
  /** 'permanent', 'reachable', 'stale', 'noarp', ... joined with ',' when several bits are set; 'none' for 0. */
  stateName: string;
}
