// The process table on its own: what each row shows, and how its buttons
// behave around a request (confirmation, busy, errors, focus).

import { cleanup, fireEvent, render, screen, waitFor, within } from '@testing-library/preact'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { ApiError, type Action, type ProcessInfo } from '../src/api'
import { ProcessTable, shownRows } from '../src/ProcessTable'
import { proc } from './helpers'

afterEach(cleanup)

function table(
  processes = [proc()],
  onAction = vi.fn(async (_l: string, _a: Action) => [] as string[]),
  receivedAt = Date.now(),
) {
  const onLogs = vi.fn()
  const rows = shownRows(processes, '', null, null)
  const view = render(<ProcessTable rows={rows} receivedAt={receivedAt} onAction={onAction} logsOf={null} onLogs={onLogs} />)
  return { ...view, onAction, onLogs }
}

const row = (label: string) => document.querySelector<HTMLElement>(`tbody[data-process="${label}"]`)!
const off = (button: HTMLElement) => button.getAttribute('aria-disabled') === 'true'

describe('ProcessTable', () => {
  it('renders every state with its badge, pid, uptime, restarts, last exit and status text', () => {
    table([
      proc({ name: 'web', state: 'running', pid: 4242, uptime_secs: 192, restarts: 2, memory_bytes: 9_961_472, cpu_secs: 1.5 }),
      proc({ name: 'db', state: 'fatal', pid: null, uptime_secs: null, last_exit: 'exit 1' }),
      proc({ name: 'cron', state: 'backoff', pid: null, uptime_secs: null, next_start_secs: 4, last_exit: 'signal 9 (KILL)' }),
      proc({ name: 'queue', state: 'starting', pid: 77, uptime_secs: 3, status_text: 'loading' }),
    ])
    const web = within(row('web'))
    expect(web.getByText('running').className).toContain('badge ok')
    expect(web.getByText('4242')).toBeTruthy()
    expect(web.getByText('3m12s')).toBeTruthy()
    expect(web.getByText('2')).toBeTruthy()
    expect(row('web').querySelector('.mem')!.textContent).toBe('9.5M')
    expect(row('web').querySelector('.cpu')!.textContent).toBe('1.50s')

    const db = within(row('db'))
    expect(db.getByText('fatal').className).toContain('badge bad')
    expect(db.getByText('exit 1')).toBeTruthy()
    expect(row('db').querySelector('.pid')!.textContent).toBe('-')
    expect(row('db').querySelector('.mem')!.textContent).toBe('-')

    expect(within(row('cron')).getByText('backoff').className).toContain('badge warn')
    expect(within(row('cron')).getByText('restart in 4s · last: signal 9 (KILL)')).toBeTruthy()
    expect(within(row('queue')).getByText('starting').className).toContain('badge busy')
    expect(row('queue').querySelector('.status-text')!.textContent).toBe('loading')
  })

  it('says who ended the last run', () => {
    table([proc({ state: 'stopped', pid: null, last_exit: 'signal 15 (TERM)', ended_by: 'user', last_exit_at: null })])
    expect(row('web').querySelector('.detail')!.textContent).toBe('signal 15 (TERM)stopped by a user')
  })

  it('labels instances of a multi-instance service name:N and acts on that label', async () => {
    const { onAction } = table([proc({ name: 'worker', instance: 0 }), proc({ name: 'worker', instance: 1, pid: 9 })])
    expect(row('worker:0')).toBeTruthy()
    fireEvent.click(within(row('worker:1')).getByRole('button', { name: 'Restart worker:1' }))
    await waitFor(() => expect(onAction).toHaveBeenCalledWith('worker:1', 'restart'))
  })

  it('offers another instance while max_instances allows one and all run', async () => {
    const two = [proc({ name: 'w', instance: 0, max_instances: 3 }), proc({ name: 'w', instance: 1, max_instances: 3 })]
    const { onAction } = table(two)
    fireEvent.click(screen.getByRole('button', { name: 'Start another instance of w' }))
    await waitFor(() => expect(onAction).toHaveBeenCalledWith('w', 'start'))
    cleanup()
    table([...two, proc({ name: 'w', instance: 2, max_instances: 3 })])
    expect(screen.queryByRole('button', { name: 'Start another instance of w' })).toBeNull()
  })

  it('advances uptimes by the age of the status, only for live processes', () => {
    table(
      [proc({ name: 'a', uptime_secs: 50 }), proc({ name: 'b', state: 'exited', uptime_secs: null, pid: null })],
      undefined,
      Date.now() - 15_000,
    )
    expect(within(row('a')).getByText('1m05s')).toBeTruthy()
    expect(row('b').querySelector('.uptime')!.textContent).toBe('-')
  })

  it('asks for confirmation before stopping; Cancel and Escape send nothing and give the focus back', async () => {
    const { onAction } = table()
    const stop = screen.getByRole('button', { name: 'Stop web' })
    stop.focus()
    fireEvent.click(stop)
    expect(onAction).not.toHaveBeenCalled()
    expect(screen.getByText('Stop web?')).toBeTruthy()
    await waitFor(() => expect(document.activeElement?.textContent).toBe('Cancel'))
    fireEvent.click(screen.getByRole('button', { name: 'Cancel stopping web' }))
    expect(onAction).not.toHaveBeenCalled()
    expect(screen.queryByText('Stop web?')).toBeNull()
    await waitFor(() => expect(document.activeElement?.getAttribute('aria-label')).toBe('Stop web'))

    fireEvent.click(screen.getByRole('button', { name: 'Stop web' }))
    fireEvent.keyDown(screen.getByRole('button', { name: 'Yes, stop web' }), { key: 'Escape' })
    expect(screen.queryByText('Stop web?')).toBeNull()

    fireEvent.click(screen.getByRole('button', { name: 'Stop web' }))
    fireEvent.click(screen.getByRole('button', { name: 'Yes, stop web' }))
    await waitFor(() => expect(onAction).toHaveBeenCalledWith('web', 'stop'))
    expect(onAction).toHaveBeenCalledTimes(1)
  })

  it('marks the buttons unavailable while a request runs, keeps the focus, and shows what the daemon said', async () => {
    let finish!: (lines: string[]) => void
    const onAction = vi.fn(() => new Promise<string[]>((resolve) => (finish = resolve)))
    table([proc()], onAction)
    const restart = screen.getByRole('button', { name: 'Restart web' })
    restart.focus()
    fireEvent.click(restart)
    await screen.findByText('Restarting…')
    expect(off(screen.getByRole('button', { name: 'Restart web' }))).toBe(true)
    expect(off(screen.getByRole('button', { name: 'Stop web' }))).toBe(true)
    expect(off(screen.getByRole('button', { name: 'Start web' }))).toBe(true)
    expect(document.activeElement).toBe(restart)
    fireEvent.click(screen.getByRole('button', { name: 'Stop web' }))
    expect(screen.queryByText('Stop web?')).toBeNull()
    finish(['web: restarted (pid 124)'])
    expect(await screen.findByText('web: restarted (pid 124)')).toBeTruthy()
    expect(off(screen.getByRole('button', { name: 'Restart web' }))).toBe(false)
  })

  it('shows a failed request inline, in its row', async () => {
    const onAction = vi.fn(async () => {
      throw new ApiError(500, 'web: exec /nope: No such file or directory', ['web: start failed'])
    })
    table([proc({ state: 'exited', pid: null, uptime_secs: null })], onAction)
    fireEvent.click(screen.getByRole('button', { name: 'Start web' }))
    const alert = await within(row('web')).findByRole('alert')
    expect(alert.textContent).toContain('web: exec /nope: No such file or directory')
    expect(alert.textContent).toContain('web: start failed')
  })

  it('says which request failed when the daemon did not answer', async () => {
    const onAction = vi.fn(async () => {
      throw new ApiError(0, 'cannot reach the daemon')
    })
    table([proc()], onAction)
    fireEvent.click(screen.getByRole('button', { name: 'Restart web' }))
    expect((await within(row('web')).findByRole('alert')).textContent).toContain('restart web: cannot reach the daemon')
  })

  it('enables only the buttons that make sense in a state', () => {
    table([proc({ name: 'up' }), proc({ name: 'down', state: 'stopped', pid: null, uptime_secs: null })])
    const enabled = (label: string, verb: string) => !off(screen.getByRole('button', { name: `${verb} ${label}` }))
    expect([enabled('up', 'Start'), enabled('up', 'Stop'), enabled('up', 'Restart')]).toEqual([false, true, true])
    expect([enabled('down', 'Start'), enabled('down', 'Stop'), enabled('down', 'Restart')]).toEqual([true, false, true])
  })

  it('opens the log pane of a service by name, and has no Logs button without a log file', () => {
    const { onLogs } = table([proc({ name: 'worker', instance: 1 }), proc({ name: 'quiet', log_file: null })])
    fireEvent.click(screen.getByRole('button', { name: 'Logs of worker' }))
    expect(onLogs).toHaveBeenCalledWith('worker')
    expect(screen.queryByRole('button', { name: 'Logs of quiet' })).toBeNull()
  })

  it('filters by text and state, and sorts', () => {
    const all: ProcessInfo[] = [
      proc({ name: 'b', restarts: 5 }),
      proc({ name: 'a', state: 'stopped', restarts: 1, status_text: 'idle here' }),
      proc({ name: 'c', restarts: 3 }),
    ]
    const labels = (text: string, state: string | null, key?: 'name' | 'restarts', down = false) =>
      shownRows(all, text, state, key ? { key, down } : null).map((r) => r.label)
    expect(labels('', null)).toEqual(['b', 'a', 'c'])
    expect(labels('', null, 'name')).toEqual(['a', 'b', 'c'])
    expect(labels('', null, 'restarts', true)).toEqual(['b', 'c', 'a'])
    expect(labels('IDLE', null)).toEqual(['a'])
    expect(labels('', 'running')).toEqual(['b', 'c'])
  })

  it('redraws only the rows whose process changed', () => {
    const onAction = vi.fn(async () => [] as string[])
    const onLogs = vi.fn()
    const first = [proc({ name: 'a', uptime_secs: 10 }), proc({ name: 'b', uptime_secs: 10 })]
    const view = render(
      <ProcessTable rows={shownRows(first, '', null, null)} receivedAt={Date.now()} onAction={onAction} logsOf={null} onLogs={onLogs} />,
    )
    const before = row('a').querySelector('.uptime')!.firstChild!
    row('a').querySelector('.uptime')!.setAttribute('data-mark', '1')
    // Only uptimes moved on for a, and b restarted.
    const next = [proc({ name: 'a', uptime_secs: 11 }), proc({ name: 'b', uptime_secs: 0, pid: 999 })]
    view.rerender(
      <ProcessTable rows={shownRows(next, '', null, null)} receivedAt={Date.now()} onAction={onAction} logsOf={null} onLogs={onLogs} />,
    )
    expect(row('a').querySelector('.uptime')!.firstChild).toBe(before)
    expect(row('a').querySelector('.uptime')!.textContent).toBe('10s')
    expect(within(row('b')).getByText('999')).toBeTruthy()
  })
})
