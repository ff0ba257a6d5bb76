/** Agent API errors by route and HTTP status. */
import { Counter, type Registry } from 'prom-client';

/** The route label of a request that matched no route: raw paths would make a series per path a client invents. */
export const UNMATCHED_ROUTE = 'unmatched';

/** Records one API request answered with an error status. */
export type ApiErrorObserver = (route: string | undefined, status: number) => void;

/** Registers podnet_api_errors_total{route,code} and returns its observer. */
export function apiMetrics(registry: Registry): ApiErrorObserver {
  const errors = new Counter({
    name: 'podnet_api_errors_total',
    help: 'Agent API requests answered with an error, by route ("METHOD /path", or unmatched) and HTTP status code.',
    labelNames: ['route', 'code'],
    registers: [registry],
  });
  return (route, status) => errors.inc({ route: route ?? UNMATCHED_ROUTE, code: String(status) });
}
