// How values of the status document are shown: the same forms as the CLI's
// `status` table, so a user reading both sees one vocabulary.

import type { ProcessInfo, State } from './api'

const pad = (n: number) => String(n).padStart(2, '0')

/** 45s, 3m12s, 2h03m, 4d02h: two units at most, the second zero-padded. */
export function formatUptime(secs: number | null | undefined): string {
  if (secs == null || !Number.isFinite(secs) || secs < 0) return '-'
  const s = Math.floor(secs)
  if (s < 60) return `${s}s`
  if (s < 3600) return `${Math.floor(s / 60)}m${pad(s % 60)}s`
  if (s < 86400) return `${Math.floor(s / 3600)}h${pad(Math.floor(s / 60) % 60)}m`
  return `${Math.floor(s / 86400)}d${pad(Math.floor(s / 3600) % 24)}h`
}

/** 980K, 9.5M, 120M, 1.2G: the CLI's MEM column. */
export function formatBytes(bytes: number | null | undefined): string {
  if (bytes == null || !(bytes >= 0)) return '-'
  const kib = Math.floor(bytes / 1024)
  if (kib < 1024) return `${kib}K`
  const [tenths, unit] = kib < 1048576 ? [Math.floor((kib * 10) / 1024), 'M'] : [Math.floor((kib * 10) / 1048576), 'G']
  return tenths < 100 ? `${Math.floor(tenths / 10)}.${tenths % 10}${unit}` : `${Math.floor(tenths / 10)}${unit}`
}

/** 0.25s, 12.3s, then as uptimes: the CLI's CPU column, which is narrower. */
export function formatCpu(secs: number | null | undefined): string {
  if (secs == null || !(secs >= 0)) return '-'
  const ms = Math.round(secs * 1000)
  if (ms < 10_000) return `${Math.floor(ms / 1000)}.${pad(Math.floor((ms % 1000) / 10))}s`
  if (ms < 100_000) return `${Math.floor(ms / 1000)}.${Math.floor((ms % 1000) / 100)}s`
  return formatUptime(ms / 1000)
}

/**
 * The label a row is shown and addressed by: `web` for the only instance of
 * a service, `web:1` where a service has several instances (as the CLI).
 */
export function processLabel(process: ProcessInfo, all: ProcessInfo[]): string {
  const siblings = all.filter((p) => p.name === process.name).length
  return siblings > 1 || process.instance !== 0 ? `${process.name}:${process.instance}` : process.name
}

/** States in which a process exists, so its uptime keeps growing. */
export const LIVE_STATES: readonly State[] = ['running', 'starting', 'stopping']

/** The badge colour class: ok, busy, warn, idle or bad. */
export function stateTone(state: State): string {
  switch (state) {
    case 'running':
    case 'done':
      return 'ok'
    case 'starting':
    case 'waiting':
      return 'busy'
    case 'stopping':
    case 'backoff':
      return 'warn'
    case 'stopped':
    case 'exited':
      return 'idle'
    case 'fatal':
      return 'bad'
    default:
      return 'idle'
  }
}

/** The "last exit" column: how the last run ended, or when the next start is due. */
export function detail(process: ProcessInfo, nextStartSecs: number | null): string {
  const parts: string[] = []
  if (process.state === 'backoff' && nextStartSecs != null) parts.push(`restart in ${formatUptime(nextStartSecs)}`)
  if (process.last_exit) parts.push(parts.length ? `last: ${process.last_exit}` : process.last_exit)
  return parts.join(' · ') || '-'
}

const ENDED_BY: Record<string, string> = { user: 'stopped by a user', daemon: 'stopped by the daemon', itself: 'ended on its own' }

/** Who ended the last run and when: "stopped by a user at 14:05:01". */
export function endedText(process: ProcessInfo, now = Date.now()): string {
  const who = process.ended_by ? ENDED_BY[process.ended_by] ?? process.ended_by : ''
  if (process.last_exit_at == null) return who
  const at = new Date(process.last_exit_at * 1000)
  const sameDay = new Date(now).toDateString() === at.toDateString()
  const time = sameDay ? at.toLocaleTimeString([], { hour12: false }) : at.toLocaleString([], { hour12: false })
  return who ? `${who} at ${time}` : time
}

// CSI sequences (colours, cursor moves), OSC strings (titles, links) and
// the two-byte escapes: what a terminal would act on, never print.
// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]/g

/** A log line as text: terminal escape codes removed. */
export function stripAnsi(line: string): string {
  return line.includes('\x1b') ? line.replace(ANSI, '') : line
}
