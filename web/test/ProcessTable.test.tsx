// The process table on its own: what each row shows, and how its buttons
// behave around a request (confirmation, busy, errors).

import { cleanup, fireEvent, render, screen, waitFor, within } from '@testing-library/preact'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { ApiError, type Action } from '../src/api'
import { ProcessTable } from '../src/ProcessTable'
import { proc } from './helpers'

afterEach(cleanup)

function table(processes = [proc()], onAction = vi.fn(async (_l: string, _a: Action) => [] as string[])) {
  const onLogs = vi.fn()
  const view = render(<ProcessTable processes={processes} age={0} onAction={onAction} logsOf={null} onLogs={onLogs} />)
  return { ...view, onAction, onLogs }
}

const row = (label: string) => document.querySelector<HTMLElement>(`tbody[data-process="${label}"]`)!

describe('ProcessTable', () => {
  it('renders every state with its badge, pid, uptime, restarts, memory, CPU and last exit', () => {
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
    expect(within(row('queue')).getByText('loading')).toBeTruthy()
  })

  it('labels instances of a multi-instance service name:N and acts on that label', async () => {
    const { onAction } = table([proc({ name: 'worker', instance: 0 }), proc({ name: 'worker', instance: 1, pid: 9 })])
    expect(row('worker:0')).toBeTruthy()
    fireEvent.click(within(row('worker:1')).getByRole('button', { name: 'Restart' }))
    await waitFor(() => expect(onAction).toHaveBeenCalledWith('worker:1', 'restart'))
  })

  it('advances uptimes by the age of the status, only for live processes', () => {
    render(
      <ProcessTable
        processes={[proc({ name: 'a', uptime_secs: 50 }), proc({ name: 'b', state: 'exited', uptime_secs: null, pid: null })]}
        age={15}
        onAction={vi.fn()}
        logsOf={null}
        onLogs={vi.fn()}
      />,
    )
    expect(within(row('a')).getByText('1m05s')).toBeTruthy()
    expect(row('b').querySelector('.uptime')!.textContent).toBe('-')
  })

  it('asks for confirmation before stopping, and cancelling sends nothing', async () => {
    const { onAction } = table()
    fireEvent.click(screen.getByRole('button', { name: 'Stop' }))
    expect(onAction).not.toHaveBeenCalled()
    expect(screen.getByText('Stop web?')).toBeTruthy()
    fireEvent.click(screen.getByRole('button', { name: 'Cancel' }))
    expect(onAction).not.toHaveBeenCalled()
    expect(screen.queryByText('Stop web?')).toBeNull()

    fireEvent.click(screen.getByRole('button', { name: 'Stop' }))
    fireEvent.click(screen.getByRole('button', { name: 'Yes, stop' }))
    await waitFor(() => expect(onAction).toHaveBeenCalledWith('web', 'stop'))
    expect(onAction).toHaveBeenCalledTimes(1)
  })

  it('disables the buttons while a request runs and shows what the daemon said', async () => {
    let finish!: (lines: string[]) => void
    const onAction = vi.fn(() => new Promise<string[]>((resolve) => (finish = resolve)))
    table([proc()], onAction)
    fireEvent.click(screen.getByRole('button', { name: 'Restart' }))
    const busy = await screen.findByRole('button', { name: 'Restarting…' })
    expect((busy as HTMLButtonElement).disabled).toBe(true)
    expect((screen.getByRole('button', { name: 'Stop' }) as HTMLButtonElement).disabled).toBe(true)
    expect((screen.getByRole('button', { name: 'Start' }) as HTMLButtonElement).disabled).toBe(true)
    finish(['web: restarted (pid 124)'])
    expect(await screen.findByText('web: restarted (pid 124)')).toBeTruthy()
    expect((screen.getByRole('button', { name: 'Restart' }) as HTMLButtonElement).disabled).toBe(false)
  })

  it('shows a failed request inline, in its row', async () => {
    const onAction = vi.fn(async () => {
      throw new ApiError(500, 'web: exec /nope: No such file or directory', ['web: start failed'])
    })
    table([proc({ state: 'exited', pid: null, uptime_secs: null })], onAction)
    fireEvent.click(screen.getByRole('button', { name: 'Start' }))
    const alert = await within(row('web')).findByRole('alert')
    expect(alert.textContent).toContain('web: exec /nope: No such file or directory')
    expect(alert.textContent).toContain('web: start failed')
  })

  it('says which request failed when the daemon did not answer', async () => {
    const onAction = vi.fn(async () => {
      throw new ApiError(0, 'cannot reach the daemon')
    })
    table([proc()], onAction)
    fireEvent.click(screen.getByRole('button', { name: 'Restart' }))
    expect((await within(row('web')).findByRole('alert')).textContent).toContain('restart web: cannot reach the daemon')
  })

  it('enables only the buttons that make sense in a state', () => {
    table([proc({ name: 'up' }), proc({ name: 'down', state: 'stopped', pid: null, uptime_secs: null })])
    const enabled = (label: string, name: string) =>
      !(within(row(label)).getByRole('button', { name }) as HTMLButtonElement).disabled
    expect([enabled('up', 'Start'), enabled('up', 'Stop'), enabled('up', 'Restart')]).toEqual([false, true, true])
    expect([enabled('down', 'Start'), enabled('down', 'Stop'), enabled('down', 'Restart')]).toEqual([true, false, true])
  })

  it('opens the log pane of a service by name', () => {
    const { onLogs } = table([proc({ name: 'worker', instance: 1 })])
    fireEvent.click(screen.getByRole('button', { name: 'Logs' }))
    expect(onLogs).toHaveBeenCalledWith('worker')
  })
})
