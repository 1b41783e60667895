// The formatters: the uptime forms the CLI also prints, labels, and tones.

import { describe, expect, it } from 'vitest'
import { detail, formatBytes, formatCpu, formatUptime, processLabel, stateTone } from '../src/format'
import type { ProcessInfo } from '../src/api'
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
  it('prefers the status text and says when a backoff ends', () => {
    expect(detail(process(), null)).toBe('-')
    expect(detail(process({ last_exit: 'exit 1' }), null)).toBe('exit 1')
    expect(detail(process({ status_text: 'serving', last_exit: 'exit 1' }), null)).toBe('serving · last: exit 1')
    expect(detail(process({ state: 'backoff', last_exit: 'exit 2' }), 3)).toBe('restart in 3s · last: exit 2')
  })
})
