// The whole page: a header naming the daemon, then whichever of the states
// of daemon.ts applies — connecting, signed out (the sign-in form), lost with
// nothing to show (an error with Retry), or the process table under its
// toolbar (counts by state, a filter, bulk actions), still shown (dimmed,
// under a banner) while a lost connection is being retried.
//
// Nothing here redraws on a timer: the live dot and the retry countdown
// have their own, and uptimes tick inside the table.

import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks'
import { api, ApiError, type Action, type ProcessInfo } from './api'
import { STALE_MS, useDaemon, useNow, type Conn } from './daemon'
import { LogPane } from './LogPane'
import { ProcessTable, shownRows, type Row, type Sort } from './ProcessTable'
import { SignIn } from './SignIn'

export function App() {
  const daemon = useDaemon()
  const { conn, status, signedOut, refresh } = daemon
  const [logsOf, setLogsOf] = useState<string | null>(null)
  const [filter, setFilter] = useState('')
  const [stateFilter, setStateFilter] = useState<string | null>(null)
  const [sort, setSort] = useState<Sort | null>(null)

  // Stable, so that rows which did not change are not redrawn.
  const onAction = useCallback(
    async (label: string, action: Action) => {
      try {
        const result = await api.action(label, action)
        return result.lines ?? []
      } catch (e) {
        if (e instanceof ApiError && e.status === 401) signedOut()
        throw e
      } finally {
        refresh()
      }
    },
    [signedOut, refresh],
  )

  const processes = status?.processes
  const rows = useMemo(
    () => (processes ? shownRows(processes, filter, stateFilter, sort) : []),
    [processes, filter, stateFilter, sort],
  )

  let body
  if (conn.kind === 'signed-out') {
    body = <SignIn onSignIn={daemon.signIn} notice={conn.notice} />
  } else if (status == null || processes == null) {
    body =
      conn.kind === 'lost' ? (
        <Problem conn={conn} onRetry={daemon.retry} />
      ) : (
        <p class="muted center" role="status">
          Connecting to the daemon…
        </p>
      )
  } else {
    // A service removed by a reload takes its log pane with it.
    const shownLogs = logsOf != null && processes.some((p) => p.name === logsOf) ? logsOf : null
    body = (
      <>
        {conn.kind === 'lost' && <Problem conn={conn} onRetry={daemon.retry} banner />}
        <div class={conn.kind === 'lost' ? 'stale' : undefined}>
          {processes.length === 0 ? (
            <div class="card empty">
              <h2>No services</h2>
              <p class="muted">
                Add a <code>[[processes]]</code> table to <code>{status.daemon.config}</code>, then run{' '}
                <code>mi7soft-daemon reload</code>.
              </p>
            </div>
          ) : (
            <>
              <Toolbar
                processes={processes}
                rows={rows}
                filter={filter}
                onFilter={setFilter}
                state={stateFilter}
                onState={setStateFilter}
                onAction={onAction}
                offline={conn.kind === 'lost'}
              />
              <ProcessTable
                rows={rows}
                receivedAt={daemon.receivedAt}
                onAction={onAction}
                logsOf={shownLogs}
                onLogs={setLogsOf}
                sort={sort}
                onSort={setSort}
                offline={conn.kind === 'lost'}
              />
              {rows.length === 0 && <p class="muted center">No service matches.</p>}
            </>
          )}
        </div>
        {shownLogs && <LogPane name={shownLogs} onClose={() => closeLogs(shownLogs, setLogsOf)} onUnauthorized={signedOut} />}
      </>
    )
  }

  return (
    <>
      <header class="top">
        <div class="title">
          <h1>mi7soft-daemon</h1>
          {status && <span class="version">v{status.daemon.version}</span>}
          {status && <LiveDot conn={conn} heardAt={daemon.heardAt} />}
        </div>
        {status && (
          <div class="config mono" title={status.daemon.config}>
            {status.daemon.config}
          </div>
        )}
        {conn.kind !== 'signed-out' && status && !daemon.noToken && (
          <button type="button" class="ghost signout" onClick={daemon.signOut}>
            Sign out
          </button>
        )}
      </header>
      <main>{body}</main>
    </>
  )
}

/** Closes the pane and gives the focus back to the Logs button that opened it. */
function closeLogs(name: string, setLogsOf: (name: string | null) => void) {
  setLogsOf(null)
  setTimeout(() => document.querySelector<HTMLElement>(`button[aria-label="Logs of ${CSS.escape(name)}"]`)?.focus())
}

/** "live", or how long the daemon has been silent (heartbeats come every 15 s). */
function LiveDot({ conn, heardAt }: { conn: Conn; heardAt: { current: number } }) {
  const now = useNow(5000)
  const quiet = now - heardAt.current
  const stale = conn.kind === 'live' && heardAt.current > 0 && quiet > STALE_MS
  const kind = conn.kind !== 'live' ? 'off' : stale ? 'stale' : 'on'
  const text = kind === 'on' ? 'live' : kind === 'stale' ? `no word for ${Math.round(quiet / 1000)}s` : 'offline'
  return (
    <span class={`live-dot ${kind}`} role="status" title={kind === 'stale' ? 'the daemon has not answered: it may be frozen' : text}>
      {text}
    </span>
  )
}

const STATES = ['running', 'starting', 'waiting', 'stopping', 'backoff', 'stopped', 'exited', 'fatal']

interface ToolbarProps {
  processes: ProcessInfo[]
  rows: Row[]
  filter: string
  onFilter: (text: string) => void
  state: string | null
  onState: (state: string | null) => void
  onAction: (label: string, action: Action) => Promise<string[]>
  offline: boolean
}

/** Counts by state (each a filter), the text filter and the bulk actions. */
function Toolbar({ processes, rows, filter, onFilter, state, onState, onAction, offline }: ToolbarProps) {
  const counts = new Map<string, number>()
  for (const p of processes) counts.set(p.state, (counts.get(p.state) ?? 0) + 1)
  return (
    <div class="toolbar">
      <div class="counts" role="group" aria-label="Filter by state">
        <button type="button" class="chip" aria-pressed={state == null} onClick={() => onState(null)}>
          all {processes.length}
        </button>
        {STATES.filter((s) => counts.has(s)).map((s) => (
          <button key={s} type="button" class="chip" aria-pressed={state === s} onClick={() => onState(state === s ? null : s)}>
            {s} {counts.get(s)}
          </button>
        ))}
      </div>
      <input
        type="search"
        class="filter"
        placeholder="Filter by name or status"
        aria-label="Filter services by name or status"
        value={filter}
        onInput={(e) => onFilter((e.target as HTMLInputElement).value)}
      />
      <Bulk rows={rows} onAction={onAction} offline={offline} filtered={rows.length !== processes.length} />
    </div>
  )
}

/** Requests run at once by a bulk action: the event stream takes one of the browser's six connections. */
const BULK_PARALLEL = 4

function Bulk({ rows, onAction, offline, filtered }: { rows: Row[]; onAction: ToolbarProps['onAction']; offline: boolean; filtered: boolean }) {
  const [confirming, setConfirming] = useState<'stop' | 'restart' | null>(null)
  const [progress, setProgress] = useState<string | null>(null)
  const [busy, setBusy] = useState(false)
  const yes = useRef<HTMLButtonElement>(null)
  const restartButton = useRef<HTMLButtonElement>(null)
  const stopButton = useRef<HTMLButtonElement>(null)
  // The button that opened the confirmation gets the focus back.
  const refocus = (action: 'stop' | 'restart') =>
    setTimeout(() => (action === 'stop' ? stopButton : restartButton).current?.focus())
  useEffect(() => {
    if (confirming) yes.current?.focus()
  }, [confirming])
  const which = filtered ? 'shown' : 'all'
  const cancel = () => {
    if (confirming) refocus(confirming)
    setConfirming(null)
  }
  const run = async (action: 'stop' | 'restart') => {
    const labels = rows.map((r) => r.label)
    setConfirming(null)
    setBusy(true)
    let done = 0
    const failed: string[] = []
    const next = async (): Promise<void> => {
      const label = labels.shift()
      if (label == null) return
      try {
        await onAction(label, action)
      } catch (e) {
        failed.push(e instanceof Error ? e.message : String(e))
      }
      done++
      setProgress(`${action === 'stop' ? 'Stopping' : 'Restarting'}… ${done} of ${rows.length}`)
      return next()
    }
    await Promise.all(Array.from({ length: BULK_PARALLEL }, next))
    setBusy(false)
    setProgress(
      `${action === 'stop' ? 'Stopped' : 'Restarted'} ${done - failed.length} of ${rows.length}` +
        (failed.length ? `; ${failed.length} failed: ${failed.slice(0, 3).join('; ')}` : ''),
    )
    refocus(action)
  }
  if (confirming)
    return (
      <div class="bulk confirm" role="group" aria-label={`Confirm: ${confirming} ${which}`} onKeyDown={(e) => e.key === 'Escape' && cancel()}>
        <span class="question">
          {confirming === 'stop' ? 'Stop' : 'Restart'} {rows.length} {filtered ? 'shown ' : ''}service{rows.length === 1 ? '' : 's'}?
        </span>
        <button type="button" class="danger" ref={yes} onClick={() => run(confirming)}>
          Yes, {confirming} {which}
        </button>
        <button type="button" onClick={cancel}>
          Cancel
        </button>
      </div>
    )
  const off = offline || busy || rows.length === 0
  const open = (action: 'stop' | 'restart') => () => {
    if (off) return
    setProgress(null)
    setConfirming(action)
  }
  return (
    <div class="bulk">
      <button type="button" ref={restartButton} aria-disabled={off} onClick={open('restart')}>
        Restart {which}
      </button>
      <button type="button" ref={stopButton} aria-disabled={off} onClick={open('stop')}>
        Stop {which}
      </button>
      {progress && (
        <span class="muted small" role="status">
          {progress}
        </span>
      )}
    </div>
  )
}

function Problem({ conn, onRetry, banner = false }: { conn: Extract<Conn, { kind: 'lost' }>; onRetry: () => void; banner?: boolean }) {
  const now = useNow()
  const wait = Math.max(0, Math.ceil((conn.retryAt - now) / 1000))
  return (
    <div class={banner ? 'banner problem' : 'card problem'} role="alert">
      <div>
        <strong>{banner ? 'Connection to the daemon lost' : 'Cannot reach the daemon'}</strong>
        <span class="muted">
          {' '}
          {conn.error}. {wait > 0 ? `Retrying in ${wait}s.` : 'Retrying…'}
        </span>
      </div>
      <button type="button" onClick={onRetry}>
        Retry now
      </button>
    </div>
  )
}
