/**
 * The datapath enums the metrics label with, imported in this one place so
 * the metric groups do not depend on where the generated files live.
 */
export { DROP_REASONS, dropReasonName } from '../datapath/gen/drop-reasons.js';
export { DIRECTIONS, type EndpointCounter } from '../datapath/maps/counters.js';
