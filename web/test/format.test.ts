// The formatters: the uptime forms the CLI also prints, labels, and tones.

import { describe, expect, it } from 'vitest'
import type { ProcessInfo } from '../src/api'
import { detail, endedText, formatBytes, formatCpu, formatUptime, processLabel, stateTone, stripAnsi } from '../src/format'
import { proc as process } from './helpers'

describe('formatUptime', () => {
  it('shows seconds below a minute', () => {
    expect(formatUptime(0)).toBe('0s')
    expect(formatUptime(45)).toBe('45s')
    expect(formatUptime(59.9)).toBe('59s')
  })
  it('shows minutes and zero-padded seconds below an hour', () => {
    expect(formatUptime(60)).toBe('1m00s')
    expect(formatUptime(192)).toBe('3m12s')
    expect(formatUptime(3599)).toBe('59m59s')
  })
  it('shows hours and zero-padded minutes below a day', () => {
    expect(formatUptime(3600)).toBe('1h00m')
    expect(formatUptime(2 * 3600 + 3 * 60 + 59)).toBe('2h03m')
    expect(formatUptime(86399)).toBe('23h59m')
  })
  it('shows days and zero-padded hours from a day on', () => {
    expect(formatUptime(86400)).toBe('1d00h')
    expect(formatUptime(4 * 86400 + 2 * 3600 + 1)).toBe('4d02h')
    expect(formatUptime(400 * 86400)).toBe('400d00h')
  })
  it('shows a dash for no uptime', () => {
    expect(formatUptime(null)).toBe('-')
    expect(formatUptime(undefined)).toBe('-')
    expect(formatUptime(-1)).toBe('-')
    expect(formatUptime(Number.NaN)).toBe('-')
  })
})

describe('formatBytes and formatCpu', () => {
  it('shows memory in at most five characters, as the CLI does', () => {
    expect([0, 1023 * 1024, 1024 * 1024, 9_961_472, 120 * 2 ** 20, 1288 * 2 ** 20, 5 * 2 ** 40].map(formatBytes)).toEqual([
      '0K',
      '1023K',
      '1.0M',
      '9.5M',
      '120M',
      '1.2G',
      '5120G',
    ])
    expect(formatBytes(null)).toBe('-')
    expect(formatBytes(undefined)).toBe('-')
  })

  it('shows CPU time with hundredths, then tenths, then as uptimes', () => {
    expect([0.25, 12.345, 754].map(formatCpu)).toEqual(['0.25s', '12.3s', '12m34s'])
    expect(formatCpu(null)).toBe('-')
  })
})

describe('processLabel', () => {
  it('names the only instance by the service and others by name:N', () => {
    const single = process()
    expect(processLabel(single, [single])).toBe('web')
    const zero = process({ instance: 0 })
    const one = process({ instance: 1 })
    expect(processLabel(zero, [zero, one])).toBe('web:0')
    expect(processLabel(one, [zero, one])).toBe('web:1')
  })
})

describe('stateTone and detail', () => {
  it('gives every state a colour', () => {
    const tones = ['running', 'starting', 'waiting', 'stopping', 'backoff', 'stopped', 'exited', 'done', 'fatal'].map(
      (s) => stateTone(s as ProcessInfo['state']),
    )
    expect(tones).toEqual(['ok', 'busy', 'busy', 'warn', 'warn', 'idle', 'idle', 'ok', 'bad'])
  })
  it('says how the last run ended and when a backoff ends, leaving the status text to its column', () => {
    expect(detail(process(), null)).toBe('-')
    expect(detail(process({ last_exit: 'exit 1' }), null)).toBe('exit 1')
    expect(detail(process({ status_text: 'serving', last_exit: 'exit 1' }), null)).toBe('exit 1')
    expect(detail(process({ state: 'backoff', last_exit: 'exit 2' }), 3)).toBe('restart in 3s · last: exit 2')
  })
})

describe('endedText and stripAnsi', () => {
  it('says who ended a run and when', () => {
    const at = new Date(2026, 10, 29, 14, 5, 1).getTime()
    const p = process({ last_exit: 'signal 15 (TERM)', last_exit_at: at / 1000, ended_by: 'user' })
    expect(endedText(p, at + 1000)).toBe('stopped by a user at 14:05:01')
    expect(endedText({ ...p, ended_by: 'itself' }, at)).toBe('ended on its own at 14:05:01')
    expect(endedText({ ...p, last_exit_at: null, ended_by: 'daemon' })).toBe('stopped by the daemon')
    expect(endedText({ ...p, last_exit_at: undefined, ended_by: undefined })).toBe('')
  })
  it('removes colours and other terminal codes from log lines', () => {
    expect(stripAnsi('\x1b[1;31merror\x1b[0m: \x1b]0;title\x07disk \x1b[2Kfull')).toBe('error: disk full')
    expect(stripAnsi('plain [31m')).toBe('plain [31m')
  })
})
