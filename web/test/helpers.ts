// Test doubles for the browser APIs the page talks to the daemon with: a
// scripted fetch and an EventSource the test drives by hand.

import { vi } from 'vitest'
import type { ProcessInfo, Status } from '../src/api'

export const proc = (over: Partial<ProcessInfo> = {}): ProcessInfo => ({
  name: 'web',
  instance: 0,
  state: 'running',
  pid: 123,
  uptime_secs: 5,
  restarts: 0,
  last_exit: null,
  next_start_secs: null,
  status_text: null,
  memory_bytes: null,
  cpu_secs: null,
  last_exit_at: null,
  ended_by: null,
  max_instances: 1,
  log_file: 'svc.log',
  ...over,
})

export const statusOf = (processes: ProcessInfo[]): Status => ({
  daemon: { pid: 1, version: '0.1.0', config: '/etc/mi7soft-daemon.toml' },
  processes,
})

type Reply = { status: number; body?: unknown } | Error
export type Route = (method: string, url: string, body: unknown) => Reply | undefined

/** Replaces fetch with `route`; returns the list of requests made. */
export function stubFetch(route: Route) {
  const calls: { method: string; url: string; body: unknown }[] = []
  vi.stubGlobal('fetch', async (url: string, init: RequestInit = {}) => {
    const method = init.method ?? 'GET'
    const body = typeof init.body === 'string' ? JSON.parse(init.body) : undefined
    calls.push({ method, url, body })
    const reply = route(method, url, body) ?? { status: 404, body: { error: `no route for ${method} ${url}` } }
    if (reply instanceof Error) throw reply
    return new Response(reply.body === undefined ? null : JSON.stringify(reply.body), {
      status: reply.status,
      headers: { 'Content-Type': 'application/json' },
    })
  })
  return calls
}

export class FakeEventSource {
  static instances: FakeEventSource[] = []
  onerror: (() => void) | null = null
  closed = false
  private listeners: Record<string, ((e: MessageEvent) => void)[]> = {}
  constructor(readonly url: string) {
    FakeEventSource.instances.push(this)
  }
  addEventListener(type: string, listener: (e: MessageEvent) => void) {
    ;(this.listeners[type] ??= []).push(listener)
  }
  close() {
    this.closed = true
  }
  emit(type: string, data: unknown) {
    for (const l of this.listeners[type] ?? []) l(new MessageEvent(type, { data: JSON.stringify(data) }))
  }
}

export function stubEventSource() {
  FakeEventSource.instances = []
  vi.stubGlobal('EventSource', FakeEventSource)
}
