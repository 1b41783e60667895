// The whole page against a scripted daemon: signed out on 401, sign-in,
// live updates, the empty state, the unreachable state with Retry, logs.

import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/preact'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { App } from '../src/App'
import { FakeEventSource, proc, statusOf, stubEventSource, stubFetch } from './helpers'

beforeEach(stubEventSource)
afterEach(() => {
  cleanup()
  vi.unstubAllGlobals()
  vi.useRealTimers()
})

describe('App', () => {
  it('shows the sign-in form when the daemon answers 401, and signs in with the token', async () => {
    let signedIn = false
    const calls = stubFetch((method, url, body) => {
      if (url === 'api/status')
        return signedIn ? { status: 200, body: statusOf([proc()]) } : { status: 401, body: { error: 'sign in first' } }
      if (method === 'POST' && url === 'api/login') {
        if ((body as { token: string }).token !== 's3cret') return { status: 401, body: { error: 'wrong token' } }
        signedIn = true
        return { status: 204 }
      }
    })
    render(<App />)
    const input = (await screen.findByLabelText('Token')) as HTMLInputElement
    expect(input.type).toBe('password')
    expect(document.querySelector('table')).toBeNull()
    expect(FakeEventSource.instances).toHaveLength(0)

    fireEvent.input(input, { target: { value: 'nope' } })
    fireEvent.click(screen.getByRole('button', { name: 'Sign in' }))
    expect((await screen.findByRole('alert')).textContent).toContain('wrong token')

    fireEvent.input(input, { target: { value: 's3cret' } })
    fireEvent.click(screen.getByRole('button', { name: 'Sign in' }))
    expect(await screen.findByText('web')).toBeTruthy()
    expect(calls.filter((c) => c.url === 'api/login').map((c) => c.body)).toEqual([{ token: 'nope' }, { token: 's3cret' }])
    expect(FakeEventSource.instances.map((s) => s.url)).toEqual(['api/events'])
  })

  it('signs out to the sign-in form, or hides Sign out where the daemon has no token', async () => {
    let session = true
    let token = true
    const calls = stubFetch((method, url) => {
      if (url === 'api/status')
        return session || !token ? { status: 200, body: statusOf([proc()]) } : { status: 401, body: { error: 'sign in first' } }
      if (method === 'POST' && url === 'api/logout') {
        session = false
        return { status: 204 }
      }
    })
    const first = render(<App />)
    fireEvent.click(await screen.findByRole('button', { name: 'Sign out' }))
    expect(await screen.findByLabelText('Token')).toBeTruthy()
    expect(calls.some((c) => c.url === 'api/logout')).toBe(true)
    first.unmount()

    token = false
    render(<App />)
    fireEvent.click(await screen.findByRole('button', { name: 'Sign out' }))
    await waitFor(() => expect(screen.queryByRole('button', { name: 'Sign out' })).toBeNull())
    expect(screen.getByText('web')).toBeTruthy()
  })

  it('goes back to the sign-in form when the stream fails and the daemon now says 401', async () => {
    let authorized = true
    stubFetch((_m, url) =>
      url === 'api/status'
        ? authorized
          ? { status: 200, body: statusOf([proc()]) }
          : { status: 401, body: { error: 'session expired' } }
        : undefined,
    )
    render(<App />)
    await screen.findByText('web')
    authorized = false
    FakeEventSource.instances[0].onerror!()
    expect(await screen.findByLabelText('Token', {}, { timeout: 3000 })).toBeTruthy()
    expect(FakeEventSource.instances[0].closed).toBe(true)
  })

  it('shows the header and follows status events', async () => {
    stubFetch((_m, url) => (url === 'api/status' ? { status: 200, body: statusOf([proc({ pid: 123 })]) } : undefined))
    render(<App />)
    expect(await screen.findByText('123')).toBeTruthy()
    expect(screen.getByText('v0.1.0')).toBeTruthy()
    expect(screen.getByText('/etc/mi7soft-daemon.toml')).toBeTruthy()
    FakeEventSource.instances[0].emit('status', statusOf([proc({ pid: 124, restarts: 1 })]))
    expect(await screen.findByText('124')).toBeTruthy()
  })

  it('says so when there are no services', async () => {
    stubFetch((_m, url) => (url === 'api/status' ? { status: 200, body: statusOf([]) } : undefined))
    render(<App />)
    expect(await screen.findByText('No services')).toBeTruthy()
  })

  it('shows an error with Retry when the daemon cannot be reached', async () => {
    let up = false
    stubFetch((_m, url) =>
      url === 'api/status' ? (up ? { status: 200, body: statusOf([proc()]) } : new TypeError('Failed to fetch')) : undefined,
    )
    render(<App />)
    expect((await screen.findByRole('alert')).textContent).toContain('Cannot reach the daemon')
    up = true
    fireEvent.click(screen.getByRole('button', { name: 'Retry now' }))
    expect(await screen.findByText('web')).toBeTruthy()
    expect(screen.queryByRole('alert')).toBeNull()
  })

  it('keeps the table, dimmed, under a banner while the stream is lost', async () => {
    let up = true
    stubFetch((_m, url) =>
      url === 'api/status' ? (up ? { status: 200, body: statusOf([proc()]) } : new TypeError('Failed to fetch')) : undefined,
    )
    render(<App />)
    await screen.findByText('web')
    up = false
    FakeEventSource.instances[0].onerror!()
    expect((await screen.findByRole('alert', {}, { timeout: 3000 })).textContent).toContain('Connection to the daemon lost')
    expect(screen.getByText('web')).toBeTruthy()
    expect(document.querySelector('.stale')).toBeTruthy()
    expect(screen.getByRole('button', { name: 'Restart web' }).getAttribute('aria-disabled')).toBe('true')
  })

  it('reconnects quietly after one broken stream, and shows the banner when it keeps breaking', async () => {
    stubFetch((_m, url) => (url === 'api/status' ? { status: 200, body: statusOf([proc()]) } : undefined))
    render(<App />)
    await screen.findByText('web')
    FakeEventSource.instances[0].onerror!()
    await waitFor(() => expect(FakeEventSource.instances).toHaveLength(2))
    expect(screen.queryByRole('alert')).toBeNull()
    FakeEventSource.instances[1].onerror!()
    expect((await screen.findByRole('alert')).textContent).toContain('live updates keep being interrupted')
  })

  it('stops a service only after confirmation, via POST /api/processes/NAME/stop', async () => {
    const calls = stubFetch((method, url) => {
      if (url === 'api/status') return { status: 200, body: statusOf([proc()]) }
      if (method === 'POST' && url === 'api/processes/web/stop')
        return { status: 200, body: { ok: true, lines: ['web: stopped (exit 0)'] } }
    })
    render(<App />)
    fireEvent.click(await screen.findByRole('button', { name: 'Stop web' }))
    expect(calls.some((c) => c.method === 'POST')).toBe(false)
    fireEvent.click(screen.getByRole('button', { name: 'Yes, stop web' }))
    expect(await screen.findByText('web: stopped (exit 0)')).toBeTruthy()
    expect(calls.filter((c) => c.method === 'POST').map((c) => c.url)).toEqual(['api/processes/web/stop'])
  })

  it('shows the last lines of a service in the log pane without colour codes, or why there are none', async () => {
    stubFetch((_m, url) => {
      if (url === 'api/status') return { status: 200, body: statusOf([proc(), proc({ name: 'db' })]) }
      if (url === 'api/processes/web/logs?lines=200')
        return {
          status: 200,
          body: { name: 'web', lines: ['2026-11-29T14:05:01Z hello', '2026-11-29T14:05:02Z \x1b[32mworld\x1b[0m'], file: 0, start: 10, end: 90, older: true },
        }
      if (url === 'api/processes/web/logs?lines=200&before=10')
        return { status: 200, body: { name: 'web', lines: ['first'], file: 0, start: 0, end: 10, older: false } }
      if (url === 'api/processes/db/logs?lines=200') return { status: 409, body: { error: 'db: output is not captured' } }
    })
    render(<App />)
    fireEvent.click(await screen.findByRole('button', { name: 'Logs of web' }))
    expect(await screen.findByText(/2026-11-29T14:05:02Z world$/)).toBeTruthy()
    fireEvent.click(screen.getByRole('button', { name: 'Older lines' }))
    expect(await screen.findByText('first')).toBeTruthy()
    expect(screen.queryByRole('button', { name: 'Older lines' })).toBeNull()
    fireEvent.input(screen.getByLabelText('Search the logs of web'), { target: { value: 'HELLO' } })
    expect(await screen.findByText('2026-11-29T14:05:01Z hello')).toBeTruthy()
    expect(screen.getByText('1 of 3 loaded lines match')).toBeTruthy()
    fireEvent.click(screen.getByRole('button', { name: 'Logs of db' }))
    expect((await screen.findByRole('alert')).textContent).toContain('db: output is not captured')
  })

  it('counts services by state, filters them, and stops all shown after confirmation', async () => {
    const calls = stubFetch((method, url) => {
      if (url === 'api/status')
        return { status: 200, body: statusOf([proc({ name: 'a' }), proc({ name: 'b' }), proc({ name: 'c', state: 'stopped', pid: null })]) }
      if (method === 'POST') return { status: 200, body: { ok: true, lines: [] } }
    })
    render(<App />)
    expect(await screen.findByRole('button', { name: 'running 2' })).toBeTruthy()
    fireEvent.click(screen.getByRole('button', { name: 'running 2' }))
    expect(document.querySelectorAll('tbody.proc')).toHaveLength(2)
    fireEvent.click(screen.getByRole('button', { name: 'Stop shown' }))
    expect(screen.getByText('Stop 2 shown services?')).toBeTruthy()
    fireEvent.keyDown(screen.getByRole('button', { name: 'Yes, stop shown' }), { key: 'Escape' })
    expect(screen.queryByText('Stop 2 shown services?')).toBeNull()
    fireEvent.click(screen.getByRole('button', { name: 'Stop shown' }))
    fireEvent.click(screen.getByRole('button', { name: 'Yes, stop shown' }))
    expect(await screen.findByText('Stopped 2 of 2')).toBeTruthy()
    expect(calls.filter((c) => c.method === 'POST').map((c) => c.url).sort()).toEqual([
      'api/processes/a/stop',
      'api/processes/b/stop',
    ])
    fireEvent.input(screen.getByLabelText('Filter services by name or status'), { target: { value: 'zzz' } })
    expect(await screen.findByText('No service matches.')).toBeTruthy()
  })
})

describe('App in several tabs', () => {
  /** A BroadcastChannel between the "tabs" of one test. */
  class FakeChannel {
    static all: FakeChannel[] = []
    onmessage: ((e: { data: unknown }) => void) | null = null
    closed = false
    constructor(readonly name: string) {
      FakeChannel.all.push(this)
    }
    postMessage(data: unknown) {
      for (const c of FakeChannel.all) if (c !== this && !c.closed) c.onmessage?.({ data: structuredClone(data) })
    }
    close() {
      this.closed = true
    }
  }

  /** navigator.locks with one exclusive lock and a queue. */
  function fakeLocks() {
    let held = false
    const queue: (() => void)[] = []
    const grant = (run: () => Promise<unknown> | undefined) => {
      held = true
      Promise.resolve(run()).finally(() => {
        held = false
        queue.shift()?.()
      })
    }
    return {
      request(_name: string, options: { signal?: AbortSignal }, run: () => Promise<unknown> | undefined) {
        return new Promise<void>((resolve, reject) => {
          const go = () => {
            grant(run)
            resolve()
          }
          if (!held) return go()
          queue.push(go)
          options.signal?.addEventListener('abort', () => {
            const i = queue.indexOf(go)
            if (i >= 0) queue.splice(i, 1)
            reject(new DOMException('aborted', 'AbortError'))
          })
        })
      },
    }
  }

  it('shares one event stream: the leader passes events on, and the next tab takes over when it closes', async () => {
    FakeChannel.all = []
    vi.stubGlobal('BroadcastChannel', FakeChannel)
    vi.stubGlobal('navigator', { ...navigator, locks: fakeLocks() })
    stubFetch((_m, url) => (url === 'api/status' ? { status: 200, body: statusOf([proc({ pid: 123 })]) } : undefined))
    const first = render(<App />)
    render(<App />)
    await waitFor(() => expect(screen.getAllByText('123')).toHaveLength(2))
    await waitFor(() => expect(FakeEventSource.instances).toHaveLength(1))
    FakeEventSource.instances[0].emit('status', statusOf([proc({ pid: 124 })]))
    await waitFor(() => expect(screen.getAllByText('124')).toHaveLength(2))
    first.unmount()
    await waitFor(() => expect(FakeEventSource.instances).toHaveLength(2))
    expect(FakeEventSource.instances[0].closed).toBe(true)
    FakeEventSource.instances[1].emit('status', statusOf([proc({ pid: 125 })]))
    expect(await screen.findByText('125')).toBeTruthy()
  })
})
