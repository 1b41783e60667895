// The log pane: one service's captured output, in a panel over the right of
// the page (the whole screen on a phone), beside the table rather than under
// 200 rows of it.
//
// It opens on the last PAGE_LINES lines; "Older lines" pages back through the
// log and then its rotated files (GET …/logs with file and before); it
// follows the log by asking every POLL_MS for what came after the last byte
// it has (after=end), so a poll of a quiet log costs a few bytes. Lines are
// kept in chunks, one element per answer, so new lines are appended and
// older ones prepended without touching the text the reader may have
// selected; the view stays where the reader put it unless they were at the
// end. Terminal colour codes are removed. The search box shows only the
// loaded lines that contain its text; Download saves a whole file.

import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks'
import { api, ApiError, downloadUrl, type LogPage } from './api'
import { stripAnsi } from './format'

export const PAGE_LINES = 200
export const POLL_MS = 2000
/** Lines kept in the pane; the oldest chunks go beyond this. */
const MAX_LINES = 20_000

interface Props {
  name: string
  onClose: () => void
  onUnauthorized: () => void
}

interface Chunk {
  id: number
  lines: string[]
}

/** Where the next older page comes from: file and the offset it ends at. */
type Back = { file: number; before?: number } | null

export function LogPane({ name, onClose, onUnauthorized }: Props) {
  const [chunks, setChunks] = useState<Chunk[] | null>(null)
  const [error, setError] = useState<string | null>(null)
  const [back, setBack] = useState<Back>(null)
  const [loadingOlder, setLoadingOlder] = useState(false)
  const [search, setSearch] = useState('')
  // The oldest file loaded: 0 the log, k its kth rotated file.
  const [deepest, setDeepest] = useState(0)
  const pre = useRef<HTMLDivElement>(null)
  const section = useRef<HTMLElement>(null)
  const nextId = useRef(0)
  // Whether the view was scrolled to the end before the last update: only
  // then does it stay at the end, so reading older lines is not disturbed.
  const atEnd = useRef(true)
  // Prepending older lines keeps the view on the same lines.
  const keepFromBottom = useRef<number | null>(null)

  const chunk = (page: LogPage): Chunk => ({ id: nextId.current++, lines: page.lines.map(stripAnsi) })

  const failed = (e: unknown) => {
    if (e instanceof ApiError && e.status === 401) return onUnauthorized()
    setError(
      e instanceof ApiError && (e.status === 404 || e.status === 409)
        ? `${e.message} (only a service with log_file has its output captured)`
        : e instanceof Error
          ? e.message
          : String(e),
    )
  }

  useEffect(() => {
    let stopped = false
    let timer: ReturnType<typeof setTimeout> | undefined
    let end = 0
    setChunks(null)
    setError(null)
    setBack(null)
    setSearch('')
    setDeepest(0)
    atEnd.current = true
    const follow = async () => {
      try {
        const page = await api.logs(name, PAGE_LINES * 5, 0, { after: end })
        if (stopped) return
        end = page.end
        if (page.lines.length)
          setChunks((old) => {
            const all = [...(old ?? []), chunk(page)]
            let n = all.reduce((sum, c) => sum + c.lines.length, 0)
            while (n > MAX_LINES && all.length > 1) n -= all.shift()!.lines.length
            return all
          })
        setError(null)
      } catch (e) {
        if (stopped) return
        failed(e)
        if (e instanceof ApiError && (e.status === 401 || e.status === 404 || e.status === 409)) return
      }
      timer = setTimeout(follow, POLL_MS)
    }
    const first = async () => {
      try {
        const page = await api.logs(name, PAGE_LINES)
        if (stopped) return
        end = page.end
        setChunks([chunk(page)])
        setBack(page.start > 0 ? { file: 0, before: page.start } : page.older ? { file: 1 } : null)
        timer = setTimeout(follow, POLL_MS)
      } catch (e) {
        if (!stopped) failed(e)
      }
    }
    first()
    return () => {
      stopped = true
      clearTimeout(timer)
    }
  }, [name])

  useEffect(() => {
    section.current?.querySelector<HTMLElement>('input')?.focus()
    const onKey = (e: KeyboardEvent) => e.key === 'Escape' && !e.defaultPrevented && onClose()
    document.addEventListener('keydown', onKey)
    return () => document.removeEventListener('keydown', onKey)
  }, [name])

  const older = async () => {
    if (!back || loadingOlder) return
    setLoadingOlder(true)
    try {
      const page = await api.logs(name, PAGE_LINES, back.file, back.before == null ? {} : { before: back.before })
      const el = pre.current
      keepFromBottom.current = el ? el.scrollHeight - el.scrollTop : null
      setChunks((old) => [chunk(page), ...(old ?? [])])
      setDeepest((d) => Math.max(d, page.file))
      setBack(page.start > 0 ? { file: page.file, before: page.start } : page.older ? { file: page.file + 1 } : null)
    } catch (e) {
      failed(e)
    } finally {
      setLoadingOlder(false)
    }
  }

  useLayoutEffect(() => {
    const el = pre.current
    if (!el) return
    if (keepFromBottom.current != null) {
      el.scrollTop = el.scrollHeight - keepFromBottom.current
      keepFromBottom.current = null
    } else if (atEnd.current) el.scrollTop = el.scrollHeight
  }, [chunks])

  const onScroll = () => {
    const el = pre.current
    if (el) atEnd.current = el.scrollHeight - el.scrollTop - el.clientHeight < 24
  }

  const needle = search.trim().toLowerCase()
  const total = chunks?.reduce((n, c) => n + c.lines.length, 0) ?? 0
  const matches = needle && chunks ? chunks.flatMap((c) => c.lines.filter((l) => l.toLowerCase().includes(needle))) : null
  const files = Array.from({ length: deepest + 1 }, (_, k) => k)

  return (
    <section class="logs" ref={section} role="dialog" aria-label={`Logs of ${name}`}>
      <header>
        <h2>
          Logs <span class="mono">{name}</span>
        </h2>
        <button type="button" class="ghost" onClick={onClose} aria-label={`Close the logs of ${name}`}>
          Close
        </button>
        <div class="tools">
          <input
            type="search"
            placeholder="Search loaded lines"
            aria-label={`Search the logs of ${name}`}
            value={search}
            onInput={(e) => setSearch((e.target as HTMLInputElement).value)}
          />
          {files.map((k) => (
            <a key={k} class="button ghost" href={downloadUrl(name, k)} download>
              {k ? `.${k}` : 'Download'}
            </a>
          ))}
        </div>
        <span class="muted small" role="status">
          {matches ? `${matches.length} of ${total} loaded lines match` : `${total} lines, following`}
        </span>
      </header>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {chunks == null && !error && <p class="muted">Loading…</p>}
      {chunks != null && (
        <div class="log" ref={pre} onScroll={onScroll} tabIndex={0}>
          {!matches && back && (
            <button type="button" class="older" onClick={older} aria-disabled={loadingOlder}>
              {loadingOlder ? 'Loading…' : back.file > 0 && back.before == null ? `Older lines (file .${back.file})` : 'Older lines'}
            </button>
          )}
          {matches ? (
            <pre>{matches.length ? matches.join('\n') : '(no loaded line matches)'}</pre>
          ) : total === 0 ? (
            <pre>(no output yet)</pre>
          ) : (
            chunks.map((c) => c.lines.length > 0 && <pre key={c.id}>{c.lines.join('\n')}</pre>)
          )}
        </div>
      )}
    </section>
  )
}
