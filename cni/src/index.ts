/**
 * The public surface of the CNI entry point's modules, for the agent (DEL
 * queue drain, shared spec types) and tests. The executable's entry is
 * main.ts; nothing here runs at import time.
 */
export { runCni, DEFAULT_TIMEOUTS, type CniIo, type Timeouts } from './dispatch.js';
export { createAgentClient, type AgentClient, type AgentOutcome, type AgentRequest } from './agent-client.js';
export { delQueueDir, delQueueFileName, enqueueDel, readDelQueue, removeFromDelQueue, type DelQueueEntry } from './del-queue.js';
export {
  CNI_COMMANDS,
  CURRENT_VERSION,
  CniError,
  ErrorCode,
  SUPPORTED_VERSIONS,
  convertResult,
  mergeResults,
  normaliseResult,
  versionInfo,
  type CniCommand,
  type CniVersion,
  type Result,
} from './spec.js';
export { DEFAULT_AGENT_SOCKET, DEFAULT_STATE_DIR, parseCniArgs, parseNetConf, readEnv, type Attachment, type CniEnv, type NetConf } from './validate.js';
