/**
 * The registry of podnet's error codes: the stable `code` of every
 * PodnetError, with what it means. Codes are not errno names (an errno
 * travels in SyscallError.errno/errnoName); callers, logs and tests match on
 * these. Add a code here before throwing it.
 */
export const ERROR_CODES = {
  INVALID_ARGUMENT: 'a caller passed a value the function does not accept',
  INVALID_CONFIG: 'a setting (flag, PODNET_* variable or config file key) is invalid',
  INVALID_USAGE: 'a command line could not be understood (unknown command or flag, bad value)',
  INVALID_MANIFEST: 'a Kubernetes object from a file (Service, EndpointSlice) is not valid; the message names the document and the field',
  NOT_FOUND: 'the named object (program, map, pin, endpoint) does not exist',
  CLOSED: 'the object was used after close()',
  BUSY: 'the resource is held by someone else right now',
  IN_USE: 'another podnet instance already owns the socket, address or state directory',
  TIMEOUT: 'an operation did not finish within its time limit',
  TOO_BIG: 'a request or value exceeds its size limit',
  BAD_MESSAGE: 'a kernel or peer message could not be decoded',
  BAD_JSON: 'a request body is not the JSON it should be',
  SYSCALL: 'a system call failed; the error carries errno and its name',
  PERMISSION: 'the process lacks the privileges the operation needs (root, CAP_BPF, CAP_NET_ADMIN)',
  NOT_SUPPORTED: 'the kernel lacks a feature; the error names it and the minimum kernel',
  VERIFIER_REJECTED: 'the BPF verifier refused a program; the error keeps its log',
  COMPILE_FAILED: 'clang could not compile the BPF sources',
  NO_BPF_SOURCE: 'the BPF C sources to compile were not found',
  NO_BPFFS: 'the pin directory is not on a bpf filesystem',
  NO_CGROUP: 'no cgroup v2 hierarchy is mounted for the socket programs to attach at',
  NO_LINK: 'a network interface that should exist was not found',
  BAD_ENUM: 'a value read from a map is not a member of the C enum it should belong to',
  MAP_MISMATCH: 'a pinned map differs from its descriptor (type, key or value size)',
  MAP_FULL: 'a BPF map has no room for another entry; the error names the map, its size and the setting that raises it',
  NOT_NETNS: 'a path that should be a network namespace is a file, a directory or another kind of namespace',
  LOCKED: 'another process holds the lock (another agent uses this state dir)',
  CANCELED: 'the operation was stopped before it finished (SIGTERM during start-up)',
  RESTORE_FAILED: 'the original network namespace could not be restored',
  POOL_EXHAUSTED: 'the pod CIDR has no free address',
  CNI: 'a CNI call failed with the CNI error code the error carries',
  AGENT_UNREACHABLE: 'the agent socket does not answer (agent not running or socket path wrong)',
  API_ERROR: 'the agent answered an API call with an error',
  AGENT_RUNNING: 'the operation needs the agent stopped, and it is running',
  COMMAND_FAILED: 'an external command (ip, tc, clang) exited non-zero',
  SPAWN_FAILED: 'an external command could not be started',
  CLEANUP_FAILED: 'removing what was created failed for at least one object',
  BENCH_FAILED: 'a benchmark could not set up or measure',
} as const satisfies Record<string, string>;

/** A stable error code from the registry. */
export type ErrorCode = keyof typeof ERROR_CODES;
