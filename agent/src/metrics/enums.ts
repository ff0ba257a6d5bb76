/**
 * The datapath enums the metrics label with, imported in this one place so
 * the metric groups do not depend on where the generated files live.
 */
import { DIRECTION, type DirectionName } from '../maps/index.js';

export { DROP_REASONS, dropReasonName, type EndpointCounter } from '../maps/index.js';

/** Every direction label, in enum order. */
export const DIRECTIONS = Object.keys(DIRECTION) as DirectionName[];
