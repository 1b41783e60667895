// The page's connection to the daemon: one hook that owns the status document
// and says which of four conditions the page is in.
//
//   connecting  the first GET /api/status is on its way
//   live        we have a status, and the event stream keeps it current
//   lost        the daemon or its event stream is gone; a retry is scheduled
//   signed-out  the daemon answered 401: the page shows the sign-in form
//
// A connection is always (re)made the same way: GET /api/status first, which
// is the only request whose status code the page can read (EventSource hides
// it), then the event stream. Whenever the stream fails the page starts over,
// so a 401 after a daemon restart still reaches the sign-in form. Retries
// back off from 0.5 s to 10 s, and "Retry now" skips the wait.
//
// One stream for all tabs: browsers allow six connections per host, so six
// tabs each holding an EventSource left none for actions. The tabs of a
// browser elect a leader with a Web Lock; only the leader opens the stream,
// and it passes every event on over a BroadcastChannel. When the leader tab
// closes, its lock goes to the next tab, which opens the stream. Signing out
// or in is told over the same channel. Without those APIs each tab streams.
//
// The daemon sends a `ping` event every 15 s; `heardAt` is when anything last
// came, so the page can say the daemon has gone quiet (STALE_MS).

import { useCallback, useEffect, useRef, useState } from 'preact/hooks'
import { api, ApiError, EVENTS_URL, type Status } from './api'

export type Conn =
  | { kind: 'connecting' }
  | { kind: 'live' }
  | { kind: 'lost'; error: string; retryAt: number }
  | { kind: 'signed-out'; notice?: string }

export interface Daemon {
  conn: Conn
  status: Status | null
  /** Date.now() when `status` arrived, to advance uptimes between updates. */
  receivedAt: number
  /** Date.now() when the daemon was last heard from (status or heartbeat). */
  heardAt: { current: number }
  retry: () => void
  refresh: () => void
  signIn: (token: string) => Promise<void>
  signOut: () => Promise<void>
  /** Learnt by signing out: the daemon has no token, so there is no session. */
  noToken: boolean
  /** Called by any request that met a 401. */
  signedOut: () => void
}

const MAX_DELAY_MS = 10_000
/** An event stream that lasted this long counts as having worked. */
const STABLE_MS = 10_000
/** Two heartbeats missed, and some slack: the daemon has gone quiet. */
export const STALE_MS = 40_000
const CHANNEL = 'mi7soft-daemon'
const LOCK = 'mi7soft-daemon-events'

type Message =
  | { type: 'status'; status: Status }
  | { type: 'ping' }
  | { type: 'signed-out' }
  | { type: 'signed-in' }
  | { type: 'lost'; error: string }

const shared = () => typeof BroadcastChannel === 'function' && typeof navigator !== 'undefined' && !!navigator.locks

export function useDaemon(): Daemon {
  const [conn, setConn] = useState<Conn>({ kind: 'connecting' })
  const [status, setStatus] = useState<Status | null>(null)
  const [receivedAt, setReceivedAt] = useState(0)
  const [noToken, setNoToken] = useState(false)
  const heardAt = useRef(0)
  const source = useRef<EventSource | null>(null)
  const timer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined)
  const failures = useRef(0)
  // Set by a successful sign-in until the next status arrives: a 401 then
  // means the session cookie did not stick, which the form should say.
  const justSignedIn = useRef(false)
  // Bumped by every (re)connection, so answers to an abandoned one are ignored.
  const generation = useRef(0)
  const channel = useRef<BroadcastChannel | null>(null)
  // Leadership: `release` ends it (the lock is held until it is called).
  const lock = useRef<{ abort: AbortController; release?: () => void } | null>(null)
  const signedOutNow = useRef(false)

  const post = (message: Message) => channel.current?.postMessage(message)

  const apply = (next: Status) => {
    setStatus(next)
    const now = Date.now()
    setReceivedAt(now)
    heardAt.current = now
  }

  const closeStream = () => {
    source.current?.close()
    source.current = null
  }

  const disconnect = () => {
    generation.current++
    closeStream()
    clearTimeout(timer.current)
  }

  const resign = () => {
    lock.current?.abort.abort()
    lock.current?.release?.()
    lock.current = null
  }

  const signedOut = useCallback(() => {
    signedOutNow.current = true
    disconnect()
    resign()
    setStatus(null)
    const notice = justSignedIn.current
      ? 'the token was accepted, but the daemon did not accept the session cookie that came with it'
      : undefined
    justSignedIn.current = false
    setConn({ kind: 'signed-out', notice })
  }, [])

  // The leader's stream: events are applied here and passed on to the tabs.
  const openStream = () => {
    const mine = generation.current
    closeStream()
    const openedAt = Date.now()
    const events = new EventSource(EVENTS_URL)
    source.current = events
    const onStatus = (event: MessageEvent) => {
      if (mine !== generation.current) return
      let next: Status
      try {
        next = JSON.parse(event.data) as Status
      } catch {
        return
      }
      apply(next)
      setConn({ kind: 'live' })
      post({ type: 'status', status: next })
    }
    events.addEventListener('status', onStatus)
    events.addEventListener('message', onStatus)
    events.addEventListener('ping', () => {
      if (mine !== generation.current) return
      heardAt.current = Date.now()
      post({ type: 'ping' })
    })
    events.onerror = () => {
      if (mine !== generation.current) return
      // EventSource would retry by itself, but blindly: start over instead.
      // A stream that ran a while and broke (the daemon was restarted, say)
      // is started over at once and quietly; one that keeps breaking backs
      // off like an unreachable daemon, under the banner.
      if (Date.now() - openedAt > STABLE_MS) failures.current = 0
      if (failures.current === 0) {
        failures.current = 1
        connect()
      } else {
        fail(new ApiError(0, 'live updates keep being interrupted'))
      }
    }
  }

  const connect = useCallback(async () => {
    disconnect()
    signedOutNow.current = false
    const mine = generation.current
    let first: Status
    try {
      first = await api.status()
    } catch (e) {
      if (mine === generation.current) fail(e)
      return
    }
    if (mine !== generation.current) return
    justSignedIn.current = false
    apply(first)
    setConn({ kind: 'live' })
    if (!shared()) return openStream()
    if (lock.current?.release) return openStream()
    if (lock.current) return // waiting to lead; the leader's events come meanwhile
    const abort = new AbortController()
    const held = { abort } as { abort: AbortController; release?: () => void }
    lock.current = held
    navigator.locks
      .request(LOCK, { signal: abort.signal }, () => {
        if (lock.current !== held) return undefined
        return new Promise<void>((release) => {
          held.release = release
          openStream()
        })
      })
      .catch(() => undefined)
  }, [])

  const fail = (e: unknown) => {
    if (e instanceof ApiError && e.status === 401) return signedOut()
    disconnect()
    const delay = Math.min(500 * 2 ** failures.current, MAX_DELAY_MS)
    failures.current++
    const error = e instanceof Error ? e.message : String(e)
    setConn({ kind: 'lost', error, retryAt: Date.now() + delay })
    if (lock.current?.release) post({ type: 'lost', error })
    timer.current = setTimeout(connect, delay)
  }

  useEffect(() => {
    if (shared()) {
      const bc = new BroadcastChannel(CHANNEL)
      channel.current = bc
      bc.onmessage = (event: MessageEvent<Message>) => {
        const message = event.data
        if (message.type === 'signed-out') return signedOut()
        if (message.type === 'signed-in') {
          failures.current = 0
          return void connect()
        }
        if (signedOutNow.current || lock.current?.release) return
        if (message.type === 'status') {
          apply(message.status)
          setConn({ kind: 'live' })
        } else if (message.type === 'ping') {
          heardAt.current = Date.now()
        } else if (message.type === 'lost') {
          setConn({ kind: 'lost', error: message.error, retryAt: Date.now() + MAX_DELAY_MS })
        }
      }
    }
    connect()
    return () => {
      disconnect()
      resign()
      channel.current?.close()
      channel.current = null
    }
  }, [connect])

  const retry = useCallback(() => {
    failures.current = 0
    setConn({ kind: 'connecting' })
    connect()
  }, [connect])

  // After an action: the stream will tell too, but this is at once and also
  // works while the stream is down.
  const refresh = useCallback(() => {
    api.status().then(apply, (e) => {
      if (e instanceof ApiError && e.status === 401) signedOut()
    })
  }, [signedOut])

  const signIn = useCallback(
    async (token: string) => {
      await api.login(token)
      justSignedIn.current = true
      failures.current = 0
      setConn({ kind: 'connecting' })
      await connect()
      post({ type: 'signed-in' })
    },
    [connect],
  )

  // Only the daemon knows whether it has a token: ask it again after
  // signing out. Without one it still answers, and signing out was moot.
  const signOut = useCallback(async () => {
    await api.logout().catch(() => undefined)
    try {
      apply(await api.status())
      setNoToken(true)
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) {
        signedOut()
        post({ type: 'signed-out' })
      } else fail(e)
    }
  }, [signedOut])

  return { conn, status, receivedAt, heardAt, retry, refresh, signIn, signOut, signedOut, noToken }
}

/** The current time, updated every `ms` milliseconds while mounted. */
export function useNow(ms = 1000): number {
  const [now, setNow] = useState(Date.now())
  useEffect(() => {
    const id = setInterval(() => setNow(Date.now()), ms)
    return () => clearInterval(id)
  }, [ms])
  return now
}
