// Types of session-filter.js, the JavaScript client of the session-filter server (SPEC 11).

/** A session id in Diffusion's form: 16 hex digits, `-`, 16 hex digits. */
export const SESSION_ID: RegExp;

/** Error codes of SPEC 11.1. */
export const ErrorReason: Readonly<{
  PARSE_ERROR: -32700;
  INVALID_REQUEST: -32600;
  METHOD_NOT_FOUND: -32601;
  INVALID_PARAMS: -32602;
  COMMUNICATION_FAILURE: 100;
  SESSION_CLOSED: 101;
  REQUEST_TIME_OUT: 102;
  ACCESS_DENIED: 103;
  INVALID_DATA: 106;
  NO_SUCH_SESSION: 107;
  UNHANDLED_MESSAGE: 109;
  INCOMPATIBLE_STATE: 111;
  CLUSTER_ROUTING: 112;
  CANCELLED: 120;
  REJECTED_REQUEST: 9003;
}>;

/** An error answered by the server or made by the client. */
export class SessionError extends Error {
  constructor(code: number, message: string, data?: unknown, method?: string);
  readonly code: number;
  /** As the server sent it: `{permission, path?}` for 103, `{line, column, offset, message}` for a bad filter. */
  readonly data: any;
  readonly method?: string;
  /** The name of the code, such as `ACCESS_DENIED`. */
  readonly reason: string | undefined;
  /** For 103: the missing permission. */
  readonly permission: string | undefined;
}

/** A session, or every session matching a filter. A string is a session id when it matches SESSION_ID. */
export type Target = string | { sessionId: string } | { filter: string };

export type Properties = Record<string, string>;

export interface ConnectOptions {
  /** Absent or "": anonymous. */
  principal?: string;
  credentials?: string;
  /** Proposed user properties; the server keeps only trusted ones. */
  properties?: Properties;
  clientType?: "ANDROID" | "C" | "DOTNET" | "IOS" | "JAVA" | "JAVASCRIPT_BROWSER" | "MQTT" | "PYTHON" | "OTHER";
  /** Reconnect with the token after a lost connection (default true). */
  reconnect?: boolean;
}

export interface FetchOptions {
  /** Keys (with `*F`, `*U`) or "all". */
  properties?: string[] | "all";
  orderBy?: string;
  descending?: boolean;
  offset?: number;
  /** Default 100, at most 10 000. */
  limit?: number;
}

export interface FetchResult {
  total: number;
  sessions: { id: string; properties: Properties }[];
}

export interface SessionEvent {
  listener: string | number;
  sessionId: string;
  event: "open" | "update" | "left" | "close";
  state: "active" | "disconnected" | "reconnected" | "closed";
  properties: Properties;
  changed?: Record<string, string | null>;
  reason?: string;
}

export type SessionEventListener =
  | ((event: SessionEvent) => void)
  | { onSessionEvent(event: SessionEvent): void; onClose?(): void };

export interface Registration {
  close(): Promise<void>;
}

export interface ListenerRegistration extends Registration {
  readonly id: string | number;
}

export interface ClientControl {
  close(target: Target): Promise<number>;
  changeRoles(target: Target, remove: Iterable<string>, add: Iterable<string>): Promise<number>;
  setSessionProperties(
    target: Target,
    properties: Record<string, string | null>,
  ): Promise<{ changed: Record<string, string | null> } | { count: number }>;
  getSessionProperties(sessionId: string, keys?: string[]): Promise<Properties>;
  count(filter: string): Promise<number>;
  fetch(filter: string, options?: FetchOptions): Promise<FetchResult>;
  addSessionEventListener(
    listener: SessionEventListener,
    options?: { filter?: string; properties?: string[]; after?: number },
  ): Promise<ListenerRegistration>;
}

export interface RequestContext {
  from: string;
  path: string;
  id: unknown;
}

export interface FilterRequestHandler {
  onResponse?(sessionId: string, response: unknown): void;
  onResponseError?(sessionId: string, error: string): void;
  onCount?(count: number): void;
}

export interface FilterRequestSummary {
  request: unknown;
  count: number;
  responded: number;
  failed: number;
  timedOut: number;
}

export interface Messaging {
  addRequestHandler(
    path: string,
    handler: ((request: any, context: RequestContext) => unknown) | { onRequest(request: any, context: RequestContext): unknown },
  ): Promise<Registration & { path: string }>;
  sendRequest(sessionId: string, path: string, request: unknown, options?: { timeout?: number }): Promise<any>;
  sendRequestToFilter(
    filter: string,
    path: string,
    request: unknown,
    handler?: FilterRequestHandler,
    options?: { timeout?: number },
  ): Promise<FilterRequestSummary>;
}

export interface SessionMetricCollector {
  name: string;
  filter: string;
  groupBy?: string[];
  maxGroups?: number;
  removeEmpty?: boolean;
  export?: boolean;
}

export interface Metrics {
  putSessionMetricCollector(collector: SessionMetricCollector): Promise<void>;
  removeSessionMetricCollector(name: string): Promise<void>;
  listSessionMetricCollectors(): Promise<any[]>;
  fetch(names?: string[]): Promise<any>;
  put(collector: SessionMetricCollector): Promise<void>;
  remove(name: string): Promise<void>;
  list(): Promise<any[]>;
}

export interface SessionLock {
  readonly name: string;
  readonly sequence: number;
  readonly scope: "session" | "connection";
  release(): Promise<boolean>;
  isOwned(): boolean;
}

export interface Locks {
  list(): Promise<Record<string, { session_id: string; server: string; sequence: number; scope: string }>>;
  cancel(name: string): Promise<number>;
  release(name: string): Promise<boolean>;
}

export interface Filters {
  check(filter: string): Promise<string>;
  explain(filter: string): Promise<{ program: string; plan: string }>;
}

export class Session {
  readonly url: string;
  readonly sessionId: string;
  readonly token: string;
  readonly properties: Properties;
  readonly reconnectTimeoutMs: number;
  readonly state: "connecting" | "active" | "disconnected" | "closed";
  readonly closeReason: string | undefined;
  readonly isClosed: boolean;
  readonly isConnected: boolean;
  readonly clients: ClientControl;
  /** Diffusion's name for `clients`. */
  readonly clientControl: ClientControl;
  readonly messaging: Messaging;
  readonly metrics: Metrics;
  readonly locks: Locks;
  readonly filters: Filters;
  on(event: "disconnect" | "reconnect", callback: () => void): this;
  on(event: "close", callback: (event: { reason: string }) => void): this;
  on(event: "error", callback: (error: unknown) => void): this;
  on(event: "notification", callback: (method: string, params: any) => void): this;
  off(event: string, callback: (...args: any[]) => void): this;
  permissions(path?: string): Promise<{ global: string[]; path: string[] }>;
  lock(name: string, scope?: "session" | "connection"): Promise<SessionLock>;
  call(method: string, params?: object, options?: { timeout?: number }): Promise<any>;
  close(): Promise<void>;
}

export function connect(url: string, options?: ConnectOptions): Promise<Session>;
export function toTarget(target: Target): { session_id: string } | { filter: string };
/** The roles of a roles string such as `"OPS","CLIENT"` (`$Roles`). */
export function parseRoles(roles: string): string[];
export function sameOriginUrl(location?: { protocol: string; host: string }): string;

declare const _default: {
  connect: typeof connect;
  Session: typeof Session;
  SessionError: typeof SessionError;
  ErrorReason: typeof ErrorReason;
  SESSION_ID: typeof SESSION_ID;
  toTarget: typeof toTarget;
  sameOriginUrl: typeof sameOriginUrl;
  parseRoles: typeof parseRoles;
};
export default _default;
