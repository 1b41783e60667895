// The daemon's HTTP API, as the page sees it: the status document's types and
// one small function per endpoint. Every failure becomes an ApiError whose
// `status` is the HTTP status, or 0 when the daemon could not be reached, so
// callers tell "signed out" (401) from "unreachable" (0) from "refused".
//
// URLs are relative, so the page also works behind a reverse proxy that
// mounts the daemon under a sub-path.

export type State =
  | 'running'
  | 'starting'
  | 'waiting'
  | 'stopping'
  | 'backoff'
  | 'stopped'
  | 'exited'
  | 'done'
  | 'fatal'

export interface ProcessInfo {
  name: string
  instance: number
  state: State
  pid: number | null
  uptime_secs: number | null
  restarts: number
  last_exit: string | null
  next_start_secs: number | null
  status_text: string | null
  /** Resident memory and CPU time of its process group; null when nothing runs (absent from older daemons). */
  memory_bytes?: number | null
  cpu_secs?: number | null
  /** When the last run ended (Unix seconds), and who ended it. Absent from older daemons. */
  last_exit_at?: number | null
  ended_by?: 'user' | 'daemon' | 'itself' | null
  max_instances?: number
  /** The log file its output is captured in (the pane can read it), or null. */
  log_file?: string | null
}

/** A run of whole lines of one file of a log: 0 the log, k its kth rotated file. */
export interface LogPage {
  name: string
  lines: string[]
  file: number
  start: number
  end: number
  older: boolean
}

export type LogCursor = { before?: number; after?: number }

export interface Status {
  daemon: { pid: number; version: string; config: string }
  processes: ProcessInfo[]
}

export type Action = 'start' | 'stop' | 'restart'

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly lines: string[] = [],
  ) {
    super(message)
  }
}

async function call<T>(method: 'GET' | 'POST', url: string, body?: unknown): Promise<T> {
  let response: Response
  try {
    response = await fetch(url, {
      method,
      cache: 'no-store',
      credentials: 'same-origin',
      headers: body === undefined ? undefined : { 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    })
  } catch {
    throw new ApiError(0, 'no answer (network error)')
  }
  // A 204 has no body; an error may come from a proxy and not be JSON.
  const data = response.status === 204 ? null : await response.json().catch(() => null)
  if (!response.ok) {
    const message = typeof data?.error === 'string' ? data.error : `HTTP ${response.status}`
    throw new ApiError(response.status, message, Array.isArray(data?.lines) ? data.lines : [])
  }
  return data as T
}

/** The path segment of a service or instance label (`web`, `web:1`). */
function segment(label: string): string {
  return encodeURIComponent(label).replace(/%3A/gi, ':')
}

export const api = {
  status: () => call<Status>('GET', 'api/status'),
  login: (token: string) => call<null>('POST', 'api/login', { token }),
  logout: () => call<null>('POST', 'api/logout'),
  action: (label: string, action: Action) =>
    call<{ ok: boolean; lines: string[] }>('POST', `api/processes/${segment(label)}/${action}`),
  logs: (name: string, lines: number, file = 0, cursor: LogCursor = {}) =>
    call<LogPage>(
      'GET',
      `api/processes/${segment(name)}/logs?lines=${lines}` +
        (file ? `&file=${file}` : '') +
        (cursor.before != null ? `&before=${cursor.before}` : '') +
        (cursor.after != null ? `&after=${cursor.after}` : ''),
    ),
}

export const downloadUrl = (name: string, file: number) => `api/processes/${segment(name)}/logs?download=1&file=${file}`

export const EVENTS_URL = 'api/events'
