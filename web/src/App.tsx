// The whole page: a header naming the daemon, then whichever of the states
// of daemon.ts applies — connecting, signed out (the sign-in form), lost with
// nothing to show (an error with Retry), or the process table, still shown
// (dimmed, under a banner) while a lost connection is being retried.

import { useState } from 'preact/hooks'
import { api, ApiError, type Action } from './api'
import { useDaemon, useNow, type Conn } from './daemon'
import { LogPane } from './LogPane'
import { ProcessTable } from './ProcessTable'
import { SignIn } from './SignIn'

export function App() {
  const daemon = useDaemon()
  const { conn, status } = daemon
  const now = useNow()
  const [logsOf, setLogsOf] = useState<string | null>(null)

  const onAction = async (label: string, action: Action) => {
    try {
      const result = await api.action(label, action)
      return result.lines ?? []
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) daemon.signedOut()
      throw e
    } finally {
      daemon.refresh()
    }
  }

  let body
  if (conn.kind === 'signed-out') {
    body = <SignIn onSignIn={daemon.signIn} notice={conn.notice} />
  } else if (status == null) {
    body =
      conn.kind === 'lost' ? (
        <Problem conn={conn} now={now} onRetry={daemon.retry} />
      ) : (
        <p class="muted center" role="status">
          Connecting to the daemon…
        </p>
      )
  } else {
    const age = Math.max(0, (now - daemon.receivedAt) / 1000)
    // A service removed by a reload takes its log pane with it.
    const shownLogs = logsOf != null && status.processes.some((p) => p.name === logsOf) ? logsOf : null
    body = (
      <>
        {conn.kind === 'lost' && <Problem conn={conn} now={now} onRetry={daemon.retry} banner />}
        <div class={conn.kind === 'lost' ? 'stale' : undefined}>
          {status.processes.length === 0 ? (
            <div class="card empty">
              <h2>No services</h2>
              <p class="muted">
                Add a <code>[[processes]]</code> table to <code>{status.daemon.config}</code>, then run{' '}
                <code>mi7soft-daemon reload</code>.
              </p>
            </div>
          ) : (
            <ProcessTable
              processes={status.processes}
              age={conn.kind === 'live' ? age : 0}
              onAction={onAction}
              logsOf={shownLogs}
              onLogs={setLogsOf}
              offline={conn.kind === 'lost'}
            />
          )}
        </div>
        {shownLogs && <LogPane name={shownLogs} onClose={() => setLogsOf(null)} onUnauthorized={daemon.signedOut} />}
      </>
    )
  }

  return (
    <>
      <header class="top">
        <div class="title">
          <h1>mi7soft-daemon</h1>
          {status && <span class="version">v{status.daemon.version}</span>}
          {status && (
            <span class={`live-dot ${conn.kind === 'live' ? 'on' : 'off'}`} title={conn.kind === 'live' ? 'live' : 'not live'}>
              {conn.kind === 'live' ? 'live' : 'offline'}
            </span>
          )}
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

function Problem({
  conn,
  now,
  onRetry,
  banner = false,
}: {
  conn: Extract<Conn, { kind: 'lost' }>
  now: number
  onRetry: () => void
  banner?: boolean
}) {
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
