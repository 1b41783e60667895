// The process table: one row per instance, with its controls. Each row runs
// its own requests, so one slow `stop` (it waits for the process to be gone,
// up to stop_timeout) blocks only that row's buttons.
//
// On a narrow screen style.css turns every <tbody> (one per instance: its row
// and the row of messages under it) into a card.

import { useEffect, useState } from 'preact/hooks'
import { ApiError, type Action, type ProcessInfo } from './api'
import { detail, formatBytes, formatCpu, formatUptime, LIVE_STATES, processLabel, stateTone } from './format'

export interface TableProps {
  processes: ProcessInfo[]
  /** Seconds since the status arrived: uptimes and countdowns advance by it. */
  age: number
  onAction: (label: string, action: Action) => Promise<string[]>
  /** The service whose log pane is open, if any. */
  logsOf: string | null
  onLogs: (name: string | null) => void
  /** While the daemon is unreachable the controls are disabled. */
  offline?: boolean
}

export function ProcessTable({ processes, age, onAction, logsOf, onLogs, offline = false }: TableProps) {
  return (
    <table class="procs">
      <thead>
        <tr>
          <th scope="col">Name</th>
          <th scope="col">State</th>
          <th scope="col" class="num">PID</th>
          <th scope="col" class="num">Uptime</th>
          <th scope="col" class="num">Restarts</th>
          <th scope="col" class="num">Memory</th>
          <th scope="col" class="num">CPU</th>
          <th scope="col">Last exit / status</th>
          <th scope="col" class="actions-head">
            <span class="sr-only">Actions</span>
          </th>
        </tr>
      </thead>
      {processes.map((process) => {
        const label = processLabel(process, processes)
        return (
          <ProcessRow
            key={label}
            label={label}
            process={process}
            age={age}
            onAction={onAction}
            logsOpen={logsOf === process.name}
            onLogs={onLogs}
            offline={offline}
          />
        )
      })}
    </table>
  )
}

interface RowProps {
  label: string
  process: ProcessInfo
  age: number
  onAction: TableProps['onAction']
  logsOpen: boolean
  onLogs: TableProps['onLogs']
  offline: boolean
}

type Note = { kind: 'ok' | 'error'; lines: string[] }

/** How long the daemon's answer to a successful request stays shown. */
export const NOTE_MS = 8000

const BUSY_WORD: Record<Action, string> = { start: 'Starting…', stop: 'Stopping…', restart: 'Restarting…' }

function ProcessRow({ label, process, age, onAction, logsOpen, onLogs, offline }: RowProps) {
  const [busy, setBusy] = useState<Action | null>(null)
  const [confirming, setConfirming] = useState(false)
  const [note, setNote] = useState<Note | null>(null)

  // What the daemon said about a success is worth a glance, not a place on
  // the screen for good; errors stay until dismissed.
  useEffect(() => {
    if (note?.kind !== 'ok') return
    const timer = setTimeout(() => setNote(null), NOTE_MS)
    return () => clearTimeout(timer)
  }, [note])

  const live = LIVE_STATES.includes(process.state) && process.uptime_secs != null
  const uptime = live ? process.uptime_secs! + age : process.uptime_secs
  const nextStart = process.next_start_secs == null ? null : Math.max(0, Math.ceil(process.next_start_secs - age))

  const run = async (action: Action) => {
    setConfirming(false)
    setBusy(action)
    setNote(null)
    try {
      const lines = await onAction(label, action)
      setNote(lines.length ? { kind: 'ok', lines } : null)
    } catch (e) {
      const lines = e instanceof ApiError ? e.lines.filter((l) => l !== e.message) : []
      // The daemon's own message names the service and what failed; only a
      // request that never got an answer needs the action spelled out.
      const message = e instanceof Error ? e.message : String(e)
      const first = e instanceof ApiError && e.status > 0 ? message : `${action} ${label}: ${message}`
      setNote({ kind: 'error', lines: [first, ...lines] })
    } finally {
      setBusy(null)
    }
  }

  const shownDetail = detail(process, nextStart)
  const down = process.state === 'stopped' || process.state === 'exited' || process.state === 'fatal'
  // A oneshot that is done has nothing to start; restart runs it again.
  const up = process.state === 'running' || process.state === 'starting' || process.state === 'done'
  const stopping = process.state === 'stopping'
  const idle = busy == null && !offline

  return (
    <tbody class={`proc${logsOpen ? ' selected' : ''}`} data-process={label} aria-busy={busy != null}>
      <tr>
        <th scope="row" class="name">
          {label}
        </th>
        <td class="state" data-label="State">
          <span class={`badge ${stateTone(process.state)}`}>{process.state}</span>
        </td>
        <td class="num pid" data-label="PID">
          {process.pid ?? '-'}
        </td>
        <td class="num uptime" data-label="Uptime">
          {formatUptime(uptime)}
        </td>
        <td class="num restarts" data-label="Restarts">
          {process.restarts}
        </td>
        <td class="num mem" data-label="Memory">
          {formatBytes(process.memory_bytes)}
        </td>
        <td class="num cpu" data-label="CPU">
          {formatCpu(process.cpu_secs)}
        </td>
        <td class={`detail${shownDetail === '-' ? ' none' : ''}`} data-label="Last exit / status">
          {shownDetail}
        </td>
        <td class="actions">
          {confirming ? (
            <span class="confirm" role="group" aria-label={`Confirm stopping ${label}`}>
              <span class="question">Stop {label}?</span>
              <button type="button" class="danger" onClick={() => run('stop')}>
                Yes, stop
              </button>
              <button type="button" onClick={() => setConfirming(false)}>
                Cancel
              </button>
            </span>
          ) : (
            <>
              <button type="button" disabled={!idle || up || stopping} onClick={() => run('start')}>
                {busy === 'start' ? BUSY_WORD.start : 'Start'}
              </button>
              <button type="button" disabled={!idle || down || stopping} onClick={() => setConfirming(true)}>
                {busy === 'stop' ? BUSY_WORD.stop : 'Stop'}
              </button>
              <button type="button" disabled={!idle || stopping} onClick={() => run('restart')}>
                {busy === 'restart' ? BUSY_WORD.restart : 'Restart'}
              </button>
              <button
                type="button"
                class="ghost"
                aria-pressed={logsOpen}
                onClick={() => onLogs(logsOpen ? null : process.name)}
              >
                Logs
              </button>
            </>
          )}
        </td>
      </tr>
      {note && (
        <tr class={`note ${note.kind}`}>
          <td colSpan={9} role={note.kind === 'error' ? 'alert' : 'status'}>
            {note.lines.map((line, i) => (
              <div key={i}>{line}</div>
            ))}
            <button type="button" class="link" aria-label="Dismiss" onClick={() => setNote(null)}>
              ×
            </button>
          </td>
        </tr>
      )}
    </tbody>
  )
}
