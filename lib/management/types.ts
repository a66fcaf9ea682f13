import type { IncomingMessage, ServerResponse } from 'node:http';

/** Where and how the management API listens. */
export interface ManagementOptions {
  /** Address to bind (default 127.0.0.1). Any non-loopback address needs `token`. */
  host?: string;
  /** Port (default 9464; 0 picks a free one, see `url`). */
  port?: number;
  /** Bearer token every request but `GET /live` must carry (`Authorization: Bearer <token>`). */
  token?: string;
  /**
   * Prometheus metrics at `GET /metrics` (default on): `false` turns them off (nothing is
   * observed, prom-client is not loaded), or metrics options (your own registry).
   */
  metrics?: boolean | import('./metrics.js').MetricsOptions;
  /** Interval of the `stats` events on `GET /api/v1/events` (default 1000 ms). */
  eventsIntervalMs?: number;
  /**
   * What `POST /api/v1/reload` runs (`busbar run` passes the reload of its routes file, see
   * `routesFileReloader`); without it the operation answers 400. Its result is the answer.
   */
  reload?: () => Promise<unknown>;
}

/** A handler mounted on the management server; `params` has the path's `:name` parts (and `*` for a prefix mount's rest). */
export type ManagementHandler = (req: IncomingMessage, res: ServerResponse, params: Record<string, string>) => void | Promise<void>;

export interface ManagementServer {
  /** `http://host:port` the server listens on. */
  readonly url: string;
  /**
   * Mount a handler under the same bind and auth rules: `path` like `/api/v1/graph`,
   * `/api/v1/things/:id`, or a prefix `/console/*`. A handler that throws answers 500 with a
   * coded error; it never takes the server down. `open: true` serves it without the token
   * (only for files that carry no data, like the console's page; the bind rules still hold).
   */
  addRoute(method: string, path: string, handler: ManagementHandler, opts?: { open?: boolean }): void;
  /** Runs `fn` once when the server closes (open streams end there); the returned function unregisters it. */
  onClose(fn: () => void): () => void;
  close(): Promise<void>;
}
