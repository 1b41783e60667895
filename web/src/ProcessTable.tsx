// The process table: one row per instance, with its controls. Each row runs
// its own requests, so one slow `stop` (it waits for the process to be gone,
// up to stop_timeout) blocks only that row's buttons.
//
// The data columns are one list, COLUMNS: the header and every row are drawn
// from it, so a column is added in one place. Rows are memoised: a status
// event redraws only the rows whose process changed, and uptimes tick in the
// DOM by themselves (Ticking), so an idle page with 200 services does almost
// nothing each second.
//
// Buttons are never `disabled` while a request runs or the state forbids
// them, but `aria-disabled`: a disabled button drops the keyboard focus, and
// a user who pressed Restart or Stop should find the focus where it was. Each
// button's accessible name says which service it acts on.
//
// On a narrow screen style.css turns every <tbody> (one per instance: its row
// and the row of messages under it) into a card.

import { Component, h, type ComponentChildren, type FunctionComponent } from 'preact'
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks'
import { ApiError, type Action, type ProcessInfo } from './api'
import { detail, endedText, formatBytes, formatCpu, formatUptime, LIVE_STATES, processLabel, stateTone } from './format'

export type SortKey = 'name' | 'state' | 'uptime' | 'restarts'
export interface Sort {
  key: SortKey
  down: boolean
}

export interface Row {
  label: string
  process: ProcessInfo
  /** Another instance may be started: all are up and max_instances allows one more. */
  canAdd: boolean
}

/** The rows to show: labelled, filtered by text and state, sorted. */
export function shownRows(processes: ProcessInfo[], text: string, state: string | null, sort: Sort | null): Row[] {
  const needle = text.trim().toLowerCase()
  const counts = new Map<string, { n: number; up: number }>()
  for (const p of processes) {
    const c = counts.get(p.name) ?? { n: 0, up: 0 }
    c.n++
    if (p.state === 'running' || p.state === 'starting') c.up++
    counts.set(p.name, c)
  }
  const last = new Map<string, ProcessInfo>()
  for (const p of processes) last.set(p.name, p)
  let rows = processes.map((process) => {
    const c = counts.get(process.name)!
    const canAdd = last.get(process.name) === process && c.up === c.n && c.n < (process.max_instances ?? 1)
    return { label: processLabel(process, processes), process, canAdd }
  })
  if (needle)
    rows = rows.filter(
      (r) => r.label.toLowerCase().includes(needle) || (r.process.status_text ?? '').toLowerCase().includes(needle),
    )
  if (state) rows = rows.filter((r) => r.process.state === state)
  if (sort) {
    const value = (r: Row): string | number => {
      switch (sort.key) {
        case 'name':
          return r.label
        case 'state':
          return r.process.state
        case 'uptime':
          return r.process.uptime_secs ?? -1
        case 'restarts':
          return r.process.restarts
      }
    }
    rows = [...rows].sort((a, b) => {
      const x = value(a)
      const y = value(b)
      const order = typeof x === 'number' ? x - (y as number) : x.localeCompare(y as string)
      return sort.down ? -order : order
    })
  }
  return rows
}

export interface TableProps {
  rows: Row[]
  /** Date.now() when the status arrived: uptimes and countdowns advance from it. */
  receivedAt: number
  onAction: (label: string, action: Action) => Promise<string[]>
  /** The service whose log pane is open, if any. */
  logsOf: string | null
  onLogs: (name: string | null) => void
  sort?: Sort | null
  onSort?: (sort: Sort) => void
  /** While the daemon is unreachable the controls are disabled. */
  offline?: boolean
}

interface Cell {
  process: ProcessInfo
  receivedAt: number
}

interface Column {
  key: string
  label: string
  /** Class of both the header and the cells. */
  cls: string
  sort?: SortKey
  cell: (c: Cell) => ComponentChildren
  /** Nothing to say: a card leaves the cell out. */
  empty?: (p: ProcessInfo) => boolean
}

const COLUMNS: Column[] = [
  {
    key: 'state',
    label: 'State',
    cls: 'state',
    sort: 'state',
    cell: ({ process }) => <span class={`badge ${stateTone(process.state)}`}>{process.state}</span>,
  },
  { key: 'pid', label: 'PID', cls: 'num pid', cell: ({ process }) => process.pid ?? '-' },
  {
    key: 'uptime',
    label: 'Uptime',
    cls: 'num uptime',
    sort: 'uptime',
    cell: ({ process, receivedAt }) => {
      const live = LIVE_STATES.includes(process.state) && process.uptime_secs != null
      return live ? <Ticking at={receivedAt} text={(age) => formatUptime(process.uptime_secs! + age)} /> : formatUptime(process.uptime_secs)
    },
  },
  { key: 'restarts', label: 'Restarts', cls: 'num restarts', sort: 'restarts', cell: ({ process }) => process.restarts },
  { key: 'mem', label: 'Memory', cls: 'num mem', cell: ({ process }) => formatBytes(process.memory_bytes) },
  { key: 'cpu', label: 'CPU', cls: 'num cpu', cell: ({ process }) => formatCpu(process.cpu_secs) },
  {
    key: 'exit',
    label: 'Last exit',
    cls: 'detail',
    empty: (p) => !p.last_exit && p.state !== 'backoff',
    cell: ({ process, receivedAt }) => {
      const ended = endedText(process)
      const text =
        process.state === 'backoff' && process.next_start_secs != null ? (
          <Ticking
            at={receivedAt}
            text={(age) => detail(process, Math.max(0, Math.ceil(process.next_start_secs! - age)))}
          />
        ) : (
          detail(process, null)
        )
      return (
        <>
          {text}
          {ended && process.last_exit && <span class="when">{ended}</span>}
        </>
      )
    },
  },
  {
    key: 'status',
    label: 'Status',
    cls: 'status-text',
    cell: ({ process }) => process.status_text ?? '-',
    empty: (p) => !p.status_text,
  },
]

export function ProcessTable({ rows, receivedAt, onAction, logsOf, onLogs, sort = null, onSort, offline = false }: TableProps) {
  const header = (column: { label: string; cls: string; sort?: SortKey }) => {
    if (!column.sort || !onSort) return column.label
    const key = column.sort
    const on = sort?.key === key
    return (
      <button type="button" class="sort" onClick={() => onSort({ key, down: on ? !sort!.down : false })}>
        {column.label}
        <span aria-hidden="true">{on ? (sort!.down ? ' ▼' : ' ▲') : ''}</span>
      </button>
    )
  }
  const ariaSort = (key?: SortKey) =>
    key && sort?.key === key ? (sort.down ? 'descending' : 'ascending') : key && onSort ? 'none' : undefined
  return (
    <table class="procs">
      <thead>
        <tr>
          <th scope="col" class="name" aria-sort={ariaSort('name')}>
            {header({ label: 'Name', cls: 'name', sort: 'name' })}
          </th>
          {COLUMNS.map((c) => (
            <th scope="col" key={c.key} class={c.cls} aria-sort={ariaSort(c.sort)}>
              {header(c)}
            </th>
          ))}
          <th scope="col" class="actions-head">
            <span class="sr-only">Actions</span>
          </th>
        </tr>
      </thead>
      {rows.map((row) => (
        <ProcessRow
          key={row.label}
          label={row.label}
          process={row.process}
          canAdd={row.canAdd}
          receivedAt={receivedAt}
          onAction={onAction}
          logsOpen={logsOf === row.process.name}
          onLogs={onLogs}
          offline={offline}
        />
      ))}
    </table>
  )
}

// -- Ticking text -------------------------------------------------------------

interface Clock {
  node: Text
  at: number
  text: (age: number) => string
}

const clocks = new Set<Clock>()
let ticker: ReturnType<typeof setInterval> | undefined
// Texts scrolled out of sight are not rewritten (200 rows, 15 on screen);
// one observer tells which are in sight, and a text coming into sight is
// brought up to date at once.
const hidden = new WeakSet<Element>()
const observer =
  typeof IntersectionObserver === 'function'
    ? new IntersectionObserver((entries) => {
        for (const entry of entries) {
          if (entry.isIntersecting) hidden.delete(entry.target)
          else hidden.add(entry.target)
        }
        if (entries.some((e) => e.isIntersecting)) tick()
      })
    : null

/** Rewrites every ticking text in sight whose words changed; nothing else. */
function tick() {
  if (typeof document !== 'undefined' && document.hidden) return
  const now = Date.now()
  for (const clock of clocks) {
    if (clock.node.parentElement && hidden.has(clock.node.parentElement)) continue
    const text = clock.text(Math.max(0, (now - clock.at) / 1000))
    if (clock.node.data !== text) clock.node.data = text
  }
}

/**
 * Text that changes with time (`text(seconds since at)`), updated in place
 * once a second by one shared timer, without redrawing its row.
 */
function Ticking({ at, text }: { at: number; text: (age: number) => string }) {
  const span = useRef<HTMLSpanElement>(null)
  const clock = useRef<Clock | null>(null)
  useLayoutEffect(() => {
    const node = span.current?.firstChild
    if (!(node instanceof Text)) return
    const mine = { node, at, text }
    clock.current = mine
    clocks.add(mine)
    ticker ??= setInterval(tick, 1000)
    const el = span.current!
    observer?.observe(el)
    return () => {
      observer?.unobserve(el)
      clocks.delete(mine)
      if (clocks.size === 0) {
        clearInterval(ticker)
        ticker = undefined
      }
    }
  })
  return (
    <span class="ticking" ref={span}>
      {text(Math.max(0, (Date.now() - at) / 1000))}
    </span>
  )
}

// -- Rows ---------------------------------------------------------------------

interface RowProps {
  label: string
  process: ProcessInfo
  canAdd: boolean
  receivedAt: number
  onAction: TableProps['onAction']
  logsOpen: boolean
  onLogs: TableProps['onLogs']
  offline: boolean
}

type Note = { kind: 'ok' | 'error'; lines: string[] }

/** How long the daemon's answer to a successful request stays shown. */
export const NOTE_MS = 8000

const BUSY_WORD: Record<Action, string> = { start: 'Starting…', stop: 'Stopping…', restart: 'Restarting…' }

/** Fields that tick by themselves: a change in them alone redraws nothing. */
const TICKING: (keyof ProcessInfo)[] = ['uptime_secs', 'next_start_secs']

function sameRow(a: RowProps, b: RowProps): boolean {
  for (const key of Object.keys(b) as (keyof RowProps)[]) {
    if (key === 'receivedAt' || key === 'process') continue
    if (a[key] !== b[key]) return false
  }
  const p = a.process
  const q = b.process
  // A process that stopped being live (or started) must redraw its uptime.
  if ((p.uptime_secs == null) !== (q.uptime_secs == null)) return false
  for (const key of Object.keys(q) as (keyof ProcessInfo)[]) {
    if (!TICKING.includes(key) && p[key] !== q[key]) return false
  }
  return true
}

/** A component redrawn only when `same` says its props changed. */
function memo<P>(render: FunctionComponent<P>, same: (a: P, b: P) => boolean) {
  return class Memo extends Component<P> {
    shouldComponentUpdate(next: P) {
      return !same(this.props as P, next)
    }
    render() {
      return h(render as FunctionComponent<object>, this.props as object)
    }
  }
}

const ProcessRow = memo(function ProcessRow({
  label,
  process,
  canAdd,
  receivedAt,
  onAction,
  logsOpen,
  onLogs,
  offline,
}: RowProps) {
  const [busy, setBusy] = useState<Action | 'add' | null>(null)
  const [confirming, setConfirming] = useState(false)
  const [note, setNote] = useState<Note | null>(null)
  const stopButton = useRef<HTMLButtonElement>(null)
  const cancelButton = useRef<HTMLButtonElement>(null)
  // Where the focus goes after the confirmation closes: back to Stop.
  const refocus = useRef(false)

  // What the daemon said about a success is worth a glance, not a place on
  // the screen for good; errors stay until dismissed.
  useEffect(() => {
    if (note?.kind !== 'ok') return
    const timer = setTimeout(() => setNote(null), NOTE_MS)
    return () => clearTimeout(timer)
  }, [note])

  useEffect(() => {
    if (confirming) cancelButton.current?.focus()
    else if (refocus.current) {
      refocus.current = false
      stopButton.current?.focus()
    }
  }, [confirming])

  const run = async (action: Action, target = label) => {
    refocus.current = confirming && document.activeElement != null && document.activeElement !== document.body
    setConfirming(false)
    setBusy(target === label ? action : 'add')
    setNote(null)
    try {
      const lines = await onAction(target, action)
      setNote(lines.length ? { kind: 'ok', lines } : null)
    } catch (e) {
      const lines = e instanceof ApiError ? e.lines.filter((l) => l !== e.message) : []
      // The daemon's own message names the service and what failed; only a
      // request that never got an answer needs the action spelled out.
      const message = e instanceof Error ? e.message : String(e)
      const first = e instanceof ApiError && e.status > 0 ? message : `${action} ${target}: ${message}`
      setNote({ kind: 'error', lines: [first, ...lines] })
    } finally {
      setBusy(null)
    }
  }

  const cancel = () => {
    refocus.current = true
    setConfirming(false)
  }

  const down = process.state === 'stopped' || process.state === 'exited' || process.state === 'fatal'
  // A oneshot that is done has nothing to start; restart runs it again.
  const up = process.state === 'running' || process.state === 'starting' || process.state === 'done'
  const stopping = process.state === 'stopping'
  const idle = busy == null && !offline
  const cell: Cell = { process, receivedAt }

  // A button that keeps the focus when it cannot act (see the top).
  const button = (name: string, text: string, off: boolean, act: () => void, extra: Record<string, unknown> = {}) => (
    <button type="button" aria-label={name} aria-disabled={off} onClick={() => !off && act()} {...extra}>
      {text}
    </button>
  )

  return (
    <tbody class={`proc${logsOpen ? ' selected' : ''}`} data-process={label} aria-busy={busy != null}>
      <tr>
        <th scope="row" class="name">
          {label}
        </th>
        {COLUMNS.map((c) => (
          <td key={c.key} class={c.empty?.(process) ? `${c.cls} none` : c.cls} data-label={c.label}>
            {c.cell(cell)}
          </td>
        ))}
        <td class="actions">
          {confirming ? (
            <span
              class="confirm"
              role="group"
              aria-label={`Confirm stopping ${label}`}
              onKeyDown={(e) => e.key === 'Escape' && (e.preventDefault(), cancel())}
            >
              <span class="question">Stop {label}?</span>
              <button type="button" class="danger" aria-label={`Yes, stop ${label}`} onClick={() => run('stop')}>
                Yes, stop
              </button>
              <button type="button" ref={cancelButton} aria-label={`Cancel stopping ${label}`} onClick={cancel}>
                Cancel
              </button>
            </span>
          ) : (
            <>
              {button(`Start ${label}`, busy === 'start' ? BUSY_WORD.start : 'Start', !idle || up || stopping, () =>
                run('start'),
              )}
              {button(`Stop ${label}`, busy === 'stop' ? BUSY_WORD.stop : 'Stop', !idle || down || stopping, () => setConfirming(true), {
                ref: stopButton,
              })}
              {button(`Restart ${label}`, busy === 'restart' ? BUSY_WORD.restart : 'Restart', !idle || stopping, () =>
                run('restart'),
              )}
              {canAdd &&
                button(
                  `Start another instance of ${process.name}`,
                  busy === 'add' ? BUSY_WORD.start : '+1',
                  !idle,
                  () => run('start', process.name),
                  { title: `Start another instance (up to ${process.max_instances})` },
                )}
              {!!process.log_file && (
                <button
                  type="button"
                  class="ghost"
                  aria-label={`Logs of ${process.name}`}
                  aria-pressed={logsOpen}
                  onClick={() => onLogs(logsOpen ? null : process.name)}
                >
                  Logs
                </button>
              )}
            </>
          )}
        </td>
      </tr>
      {note && (
        <tr class={`note ${note.kind}`}>
          <td colSpan={COLUMNS.length + 2} role={note.kind === 'error' ? 'alert' : 'status'}>
            {note.lines.map((line, i) => (
              <div key={i}>{line}</div>
            ))}
            <button type="button" class="link" aria-label={`Dismiss the message about ${label}`} onClick={() => setNote(null)}>
              ×
            </button>
          </td>
        </tr>
      )}
    </tbody>
  )
}, sameRow)
