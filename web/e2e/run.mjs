// End-to-end test of the web UI against the real daemon, in headless
// Chromium driven by playwright-core.
//
// It starts target/debug/mi7soft-daemon (or $MI7_BIN) in a fresh directory
// with a [web] listener on a free loopback port, a token, and two services:
// `ticker`, whose output is captured (log_file) and which prints a line every
// 0.2 s, and `sleeper`, which is not captured. Then, as a user would: the
// sign-in form, a wrong token, the right one, both services listed, Restart
// (the pid changes), Stop with its confirmation, Start, the log pane
// following, screenshots of the desktop and phone layouts (light and dark)
// in target/e2e/, and signing out. Every wait has a deadline; whatever
// happens, the daemon is told `shutdown --stop-all`, and anything left from
// the directory is killed. Exits 1 on the first failed check.

import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
const BIN = process.env.MI7_BIN ?? join(ROOT, 'target/debug/mi7soft-daemon')
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium'
const SHOTS = join(ROOT, 'target/e2e')
const TOKEN = 'e2e-secret'
// Deadlines stretch like the Rust tests' (MI7_TIME_SCALE, for slow machines).
const SCALE = Number(process.env.MI7_TIME_SCALE ?? 1) || 1
const secs = (n) => n * 1000 * SCALE

const log = (...args) => console.error('e2e:', ...args)
let passed = 0
async function check(what, body) {
  log(what)
  await body()
  passed++
}

function freePort() {
  return new Promise((ok, fail) => {
    const server = createServer()
    server.once('error', fail)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => ok(port))
    })
  })
}

async function until(what, timeout, condition) {
  const deadline = Date.now() + timeout
  for (;;) {
    try {
      if (await condition()) return
    } catch {
      // Not yet: a refused connection, say.
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting until ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** Pids of live processes whose working directory is inside `dir`. */
function processesIn(dir) {
  const pids = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue
    try {
      if (!readlinkSync(`/proc/${entry}/cwd`).startsWith(dir)) continue
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue
      pids.push(Number(entry))
    } catch {
      // Gone meanwhile, or not ours to read.
    }
  }
  return pids
}

function config(port) {
  const ticker = 'i=0; while :; do i=$((i+1)); echo "tick $i"; sleep 0.2; done'
  return `[daemon]
pid_file = "d.pid"
check_interval = 1

[web]
listen = "127.0.0.1:${port}"
token = "${TOKEN}"

[[processes]]
name = "ticker"
command = "sh"
args = ["-c", ${JSON.stringify(ticker)}]
log_file = "ticker.log"
min_uptime = 0

[[processes]]
name = "sleeper"
command = "sh"
args = ["-c", "exec sleep 100000"]
min_uptime = 0
`
}

const dir = mkdtempSync(join(tmpdir(), 'mi7e2e-'))
let daemon = null
let browser = null
let ok = false

try {
  if (!existsSync(BIN)) throw new Error(`no daemon binary at ${BIN}: run cargo build first (or set MI7_BIN)`)
  const port = await freePort()
  const url = `http://127.0.0.1:${port}/`
  writeFileSync(join(dir, 'daemon.toml'), config(port))
  const out = openSync(join(dir, 'daemon.log'), 'a')
  daemon = spawn(BIN, ['-c', 'daemon.toml', 'start'], { cwd: dir, stdio: ['ignore', out, out] })
  daemon.on('exit', (code, signal) => log(`daemon exited (${signal ?? code})`))
  daemon.on('error', (e) => log(`daemon: ${e.message}`))
  await until(`the daemon serves ${url}`, secs(15), async () => (await fetch(url)).ok)
  await until('the API answers 401 without a session', secs(5), async () => (await fetch(`${url}api/status`)).status === 401)

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Playwright gives every launch a new, empty profile directory.
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  })
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } })
  const page = await context.newPage()
  const pageErrors = []
  page.on('pageerror', (e) => pageErrors.push(e.message))
  // The 401s of the signed-out page and the 409 of sleeper's logs are
  // expected; any other error in the console is worth seeing.
  page.on('console', (m) => m.type() === 'error' && !/\b(401|409)\b/.test(m.text()) && log(`console: ${m.text()}`))
  page.setDefaultTimeout(secs(10))
  mkdirSync(SHOTS, { recursive: true })

  const row = (label) => page.locator(`tbody[data-process="${label}"]`)
  const pidOf = async (label) => Number(await row(label).locator('.pid').textContent())
  const stateOf = async (label) => (await row(label).locator('.badge').textContent())?.trim()

  await check('the page shows the sign-in form', async () => {
    await page.goto(url)
    await page.getByLabel('Token').waitFor()
    if ((await page.getByLabel('Token').getAttribute('type')) !== 'password') throw new Error('the token field is not a password field')
    await page.screenshot({ path: join(SHOTS, 'signin.png') })
  })

  await check('a wrong token is refused inline', async () => {
    await page.getByLabel('Token').fill('not-the-token')
    await page.getByRole('button', { name: 'Sign in', exact: true }).click()
    await page.getByRole('alert').filter({ hasText: 'wrong token' }).waitFor()
  })

  await check('the right token signs in and both services are listed', async () => {
    await page.getByLabel('Token').fill(TOKEN)
    await page.getByRole('button', { name: 'Sign in', exact: true }).click()
    await row('ticker').waitFor()
    await row('sleeper').waitFor()
    await until('both run', secs(10), async () => (await stateOf('ticker')) === 'running' && (await stateOf('sleeper')) === 'running')
    const version = await page.locator('.version').textContent()
    if (!/^v\d/.test(version ?? '')) throw new Error(`no version in the header: ${version}`)
    await page.locator('.live-dot.on').waitFor()
  })

  await check('Restart gives ticker a new pid', async () => {
    const before = await pidOf('ticker')
    if (!(before > 0)) throw new Error(`ticker has no pid: ${before}`)
    await row('ticker').getByRole('button', { name: 'Restart', exact: true }).click()
    await until(`ticker runs with a pid other than ${before}`, secs(15), async () => {
      const pid = await pidOf('ticker')
      return pid > 0 && pid !== before && (await stateOf('ticker')) === 'running'
    })
    await row('ticker').locator('tr.note').filter({ hasText: 'ticker' }).waitFor()
  })

  await check('Stop asks first, then stops sleeper; Start starts it again', async () => {
    await row('sleeper').getByRole('button', { name: 'Stop', exact: true }).click()
    await row('sleeper').getByText('Stop sleeper?').waitFor()
    if ((await stateOf('sleeper')) !== 'running') throw new Error('sleeper stopped before the confirmation')
    await row('sleeper').getByRole('button', { name: 'Yes, stop', exact: true }).click()
    await until('sleeper is stopped', secs(15), async () => (await stateOf('sleeper')) === 'stopped')
    await row('sleeper').getByRole('button', { name: 'Start', exact: true }).click()
    await until('sleeper runs again', secs(15), async () => (await stateOf('sleeper')) === 'running')
  })

  await check('the log pane shows ticker\'s lines and follows them', async () => {
    await row('ticker').getByRole('button', { name: 'Logs', exact: true }).click()
    const pre = page.locator('section.logs pre')
    await until('log lines appear', secs(10), async () => /tick \d+/.test((await pre.textContent()) ?? ''))
    const last = async () => Math.max(...[...((await pre.textContent()) ?? '').matchAll(/tick (\d+)/g)].map((m) => Number(m[1])))
    const first = await last()
    await until('the pane follows new lines', secs(10), async () => (await last()) > first)
    await page.screenshot({ path: join(SHOTS, 'desktop.png') })
  })

  await check('sleeper\'s uncaptured output is explained in the pane', async () => {
    await row('sleeper').getByRole('button', { name: 'Logs', exact: true }).click()
    await page.locator('section.logs .error').waitFor()
    await row('ticker').getByRole('button', { name: 'Logs', exact: true }).click()
    await page.locator('section.logs pre').waitFor()
  })

  await check('the phone layout shows cards with every control reachable', async () => {
    await page.setViewportSize({ width: 360, height: 740 })
    const width = await page.evaluate(() => document.documentElement.scrollWidth)
    if (width > 360) throw new Error(`the page is ${width}px wide on a 360px screen`)
    await page.evaluate(() => window.scrollTo(0, 0))
    await page.screenshot({ path: join(SHOTS, 'phone.png') })
    await page.screenshot({ path: join(SHOTS, 'phone-full.png'), fullPage: true })
  })

  await check('the dark scheme renders', async () => {
    await page.emulateMedia({ colorScheme: 'dark' })
    await page.screenshot({ path: join(SHOTS, 'phone-dark.png') })
    await page.setViewportSize({ width: 1280, height: 800 })
    await page.screenshot({ path: join(SHOTS, 'desktop-dark.png') })
  })

  await check('Sign out returns to the sign-in form, and the session is gone', async () => {
    await page.emulateMedia({ colorScheme: 'light' })
    await page.getByRole('button', { name: 'Sign out', exact: true }).click()
    await page.getByLabel('Token').waitFor()
    await page.reload()
    await page.getByLabel('Token').waitFor()
  })

  await check('no errors were thrown in the page', async () => {
    if (pageErrors.length) throw new Error(`page errors: ${pageErrors.join('; ')}`)
  })

  ok = true
} catch (e) {
  log(`FAILED: ${e?.stack ?? e}`)
  try {
    log(`daemon log:\n${readFileSync(join(dir, 'daemon.log'), 'utf8')}`)
  } catch {
    // No log to show.
  }
} finally {
  await browser?.close().catch(() => undefined)
  if (daemon && daemon.exitCode == null && daemon.signalCode == null) {
    const shutdown = spawnSync(BIN, ['-c', 'daemon.toml', 'shutdown', '--stop-all'], {
      cwd: dir,
      timeout: secs(20),
      encoding: 'utf8',
    })
    if (shutdown.status !== 0) {
      log(`shutdown --stop-all failed (${shutdown.status ?? shutdown.signal}): ${shutdown.stderr}`)
      ok = false
    }
    await until('the daemon exits', secs(10), () => daemon.exitCode != null || daemon.signalCode != null).catch(() => {
      log('the daemon did not exit: killing it')
      daemon.kill('SIGKILL')
      ok = false
    })
  }
  // Services run in their own sessions: whatever is left is found by cwd.
  for (let round = 0; round < 50; round++) {
    const left = processesIn(dir)
    if (left.length === 0) break
    if (round === 0 && ok) log(`left running after shutdown: ${left.join(' ')}; killing`)
    for (const pid of left) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // Already gone.
      }
    }
    await new Promise((r) => setTimeout(r, 20))
  }
  if (ok) rmSync(dir, { recursive: true, force: true })
  else log(`left ${dir} for inspection`)
}

console.log(`e2e: ${passed} passed, ${ok ? 0 : 1} failed`)
if (ok) console.log(`e2e: screenshots in ${SHOTS}`)
process.exit(ok ? 0 : 1)
