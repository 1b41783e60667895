// The log pane: the last LOG_LINES lines of one service's captured output,
// following it while open.
//
// It follows by fetching again every POLL_MS, not on status events: a
// service that writes output changes nothing in the status document, so the
// event stream would stay silent exactly when there is something to show.
// A fetch of 200 lines every 2 s is a few KB; it stops when the pane closes.

import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks'
import { api, ApiError } from './api'

export const LOG_LINES = 200
export const POLL_MS = 2000

interface Props {
  name: string
  onClose: () => void
  onUnauthorized: () => void
}

export function LogPane({ name, onClose, onUnauthorized }: Props) {
  const [lines, setLines] = useState<string[] | null>(null)
  const [error, setError] = useState<string | null>(null)
  const pre = useRef<HTMLPreElement>(null)
  const section = useRef<HTMLElement>(null)
  // Whether the view was scrolled to the end before the last update: only
  // then does it stay at the end, so reading older lines is not disturbed.
  const atEnd = useRef(true)

  useEffect(() => {
    let stopped = false
    let timer: ReturnType<typeof setTimeout> | undefined
    setLines(null)
    setError(null)
    atEnd.current = true
    const fetchLines = async () => {
      try {
        const result = await api.logs(name, LOG_LINES)
        if (stopped) return
        setLines(result.lines)
        setError(null)
      } catch (e) {
        if (stopped) return
        if (e instanceof ApiError && e.status === 401) return onUnauthorized()
        setError(
          e instanceof ApiError && (e.status === 404 || e.status === 409)
            ? `${e.message} (only a service with log_file has its output captured)`
            : e instanceof Error
              ? e.message
              : String(e),
        )
        // Not captured: asking again will not change that.
        if (e instanceof ApiError && (e.status === 404 || e.status === 409)) return
      }
      timer = setTimeout(fetchLines, POLL_MS)
    }
    fetchLines()
    return () => {
      stopped = true
      clearTimeout(timer)
    }
  }, [name])

  useEffect(() => {
    section.current?.scrollIntoView?.({ block: 'nearest', behavior: 'smooth' })
  }, [name])

  useLayoutEffect(() => {
    const el = pre.current
    if (el && atEnd.current) el.scrollTop = el.scrollHeight
  }, [lines])

  const onScroll = () => {
    const el = pre.current
    if (el) atEnd.current = el.scrollHeight - el.scrollTop - el.clientHeight < 24
  }

  return (
    <section class="logs" ref={section} aria-label={`Logs of ${name}`}>
      <header>
        <h2>
          Logs <span class="mono">{name}</span>
        </h2>
        <span class="muted small">last {LOG_LINES} lines, following</span>
        <button type="button" class="ghost" onClick={onClose}>
          Close
        </button>
      </header>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {lines == null && !error && <p class="muted">Loading…</p>}
      {lines != null && (
        <pre ref={pre} onScroll={onScroll} tabIndex={0}>
          {lines.length ? lines.join('\n') : '(no output yet)'}
        </pre>
      )}
    </section>
  )
}
