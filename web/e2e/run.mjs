// End-to-end test of the web UI against the real daemon, in headless
// Chromium driven by playwright-core.
//
// It starts target/debug/mi7soft-daemon (or $MI7_BIN) in a fresh directory
// with a [web] listener on a free loopback port, a token, and services:
// `ticker`, whose output is captured (log_file) and which prints a coloured
// line every 0.2 s; `sleeper`, which is not captured; `worker`, which may run
// three instances; and one with the longest name allowed (64 characters) and
// the longest status text (200, by STATUS=). Then, as a user would: the
// sign-in form, a wrong token, the right one, Restart (the pid changes), Stop
// with its confirmation, Escape, Start, more instances, the log pane
// following and paging back, the layout at 360, 768, 1280 and 1920 px (no
// sideways scrolling, every control on screen; screenshots in target/e2e/),
// seven tabs sharing one event stream, a session that outlives a restart of
// the daemon, and signing out in one tab ending all. Every wait has a
// deadline; whatever happens, the daemon is told `shutdown --stop-all`, and
// anything left from the directory is killed. Exits 1 on the first failed
// check.
//
// With E2E_MEASURE=1 it then also measures, against a second daemon running
// 200 services: the first paint, and the renderer's CPU time over 30 idle
// seconds (Chromium's Performance.getMetrics over CDP).

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

const LONG = 'a-service-with-the-longest-name-the-config-allows-sixty-four-chr'
const STATUS = `serving ${'x'.repeat(40)} ${'y'.repeat(60)} and a last word that is long: ${'z'.repeat(60)}`.slice(0, 200)
const WIDTHS = [360, 768, 1280, 1920]

function config(port) {
  const ticker = 'i=0; while :; do i=$((i+1)); printf "\\033[32mtick %d\\033[0m\\n" $i; sleep 0.2; done'
  const notify = `import os, socket, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.sendto(b"READY=1\\nSTATUS=${STATUS}", os.environ["NOTIFY_SOCKET"])
time.sleep(100000)`
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

[[processes]]
name = "worker"
command = "sh"
args = ["-c", "exec sleep 100001"]
min_uptime = 0
max_instances = 3

[[processes]]
name = "${LONG}"
command = "python3"
args = ["-c", ${JSON.stringify(notify)}]
ready = "notify"
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
  const startDaemon = async () => {
    daemon = spawn(BIN, ['-c', 'daemon.toml', 'start'], { cwd: dir, stdio: ['ignore', out, out] })
    daemon.on('exit', (code, signal) => log(`daemon exited (${signal ?? code})`))
    daemon.on('error', (e) => log(`daemon: ${e.message}`))
    await until(`the daemon serves ${url}`, secs(15), async () => (await fetch(url)).ok)
  }
  await startDaemon()
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

  await check('a wrong token is refused inline, once, and the focus stays in the field', async () => {
    await page.getByLabel('Token').fill('not-the-token')
    await page.getByRole('button', { name: 'Sign in', exact: true }).click()
    const alert = page.getByRole('alert').filter({ hasText: 'wrong token' })
    await alert.waitFor()
    const text = await alert.textContent()
    if ((text.match(/wrong token/g) ?? []).length !== 1) throw new Error(`the message says it more than once: ${text}`)
    await until('the token field has the focus', secs(5), () => page.evaluate(() => document.activeElement?.id === 'token'))
  })

  await check('the right token signs in and the services are listed', async () => {
    await page.getByLabel('Token').fill(TOKEN)
    await page.getByRole('button', { name: 'Sign in', exact: true }).click()
    await row('ticker').waitFor()
    await row('sleeper').waitFor()
    await until('all run', secs(10), async () =>
      (await stateOf('ticker')) === 'running' && (await stateOf('sleeper')) === 'running' && (await stateOf(LONG)) === 'running',
    )
    const version = await page.locator('.version').textContent()
    if (!/^v\d/.test(version ?? '')) throw new Error(`no version in the header: ${version}`)
    await page.locator('.live-dot.on').waitFor()
    await row(LONG).locator('.status-text').filter({ hasText: 'serving' }).waitFor()
  })

  await check('Restart gives ticker a new pid and keeps the focus', async () => {
    const before = await pidOf('ticker')
    if (!(before > 0)) throw new Error(`ticker has no pid: ${before}`)
    await row('ticker').getByRole('button', { name: 'Restart ticker', exact: true }).click()
    await until(`ticker runs with a pid other than ${before}`, secs(15), async () => {
      const pid = await pidOf('ticker')
      return pid > 0 && pid !== before && (await stateOf('ticker')) === 'running'
    })
    await row('ticker').locator('tr.note').filter({ hasText: 'ticker' }).waitFor()
    await until('the focus stays on Restart', secs(5), async () =>
      (await page.evaluate(() => document.activeElement?.getAttribute('aria-label'))) === 'Restart ticker')
    await row('ticker').locator('.detail').filter({ hasText: 'stopped by a user' }).waitFor()
  })

  await check('Stop asks first (Escape cancels), then stops sleeper; Start starts it again', async () => {
    await row('sleeper').getByRole('button', { name: 'Stop sleeper', exact: true }).click()
    await row('sleeper').getByText('Stop sleeper?').waitFor()
    // As a person would: Escape once the confirmation has the focus.
    await until('the confirmation has the focus', secs(5), async () =>
      (await page.evaluate(() => document.activeElement?.getAttribute('aria-label'))) === 'Cancel stopping sleeper')
    await page.keyboard.press('Escape')
    await row('sleeper').getByText('Stop sleeper?').waitFor({ state: 'detached' })
    await until('the focus is back on Stop', secs(5), async () =>
      (await page.evaluate(() => document.activeElement?.getAttribute('aria-label'))) === 'Stop sleeper')
    await row('sleeper').getByRole('button', { name: 'Stop sleeper', exact: true }).click()
    if ((await stateOf('sleeper')) !== 'running') throw new Error('sleeper stopped before the confirmation')
    await row('sleeper').getByRole('button', { name: 'Yes, stop sleeper', exact: true }).click()
    await until('sleeper is stopped', secs(15), async () => (await stateOf('sleeper')) === 'stopped')
    await row('sleeper').getByRole('button', { name: 'Start sleeper', exact: true }).click()
    await until('sleeper runs again', secs(15), async () => (await stateOf('sleeper')) === 'running')
  })

  await check('a second and a third instance of worker can be started, and no fourth', async () => {
    const more = page.getByRole('button', { name: 'Start another instance of worker', exact: true })
    await more.click()
    await row('worker:1').waitFor()
    await until('worker:1 runs', secs(15), async () => (await stateOf('worker:1')) === 'running')
    await more.click()
    await row('worker:2').waitFor()
    await until('worker:2 runs', secs(15), async () => (await stateOf('worker:2')) === 'running')
    await more.waitFor({ state: 'detached' })
  })

  await check('the log pane shows ticker\'s lines without colour codes and follows them, keeping the selection', async () => {
    await row('ticker').getByRole('button', { name: 'Logs of ticker', exact: true }).click()
    const pane = page.locator('section.logs .log')
    await until('log lines appear', secs(10), async () => /tick \d+/.test((await pane.textContent()) ?? ''))
    if ((await pane.textContent()).includes('\x1b') || (await pane.textContent()).includes('[32m')) throw new Error('colour codes are shown raw')
    const last = async () => Math.max(...[...((await pane.textContent()) ?? '').matchAll(/tick (\d+)/g)].map((m) => Number(m[1])))
    const first = await last()
    // The reader selects text; following must not take the selection away.
    await page.evaluate(() => {
      const pre = document.querySelector('section.logs .log pre')
      getSelection().selectAllChildren(pre)
    })
    const selected = await page.evaluate(() => getSelection().toString().length)
    await until('the pane follows new lines', secs(10), async () => (await last()) > first)
    const still = await page.evaluate(() => getSelection().toString().length)
    if (still !== selected) throw new Error(`following changed the selection (${selected} -> ${still} characters)`)
    await page.screenshot({ path: join(SHOTS, 'desktop.png') })
    await page.getByRole('button', { name: `Close the logs of ticker` }).click()
  })

  await check('sleeper, whose output goes to the daemon\'s log, has no Logs button', async () => {
    if (await row('sleeper').getByRole('button', { name: 'Logs of sleeper' }).count()) throw new Error('sleeper has a Logs button')
  })

  for (const width of WIDTHS) {
    await check(`at ${width}px nothing scrolls sideways and every control is on screen`, async () => {
      await page.setViewportSize({ width, height: width < 500 ? 740 : 900 })
      await page.evaluate(() => window.scrollTo(0, 0))
      const wide = await page.evaluate(() => document.documentElement.scrollWidth)
      if (wide > width) throw new Error(`the page is ${wide}px wide on a ${width}px screen`)
      const outside = await page.evaluate((w) =>
        // The column headers (sort buttons) are hidden on purpose where the rows are cards.
        [...document.querySelectorAll('main button, main input, header button')]
          .filter((b) => !(b.closest('thead') && b.getClientRects().length === 0))
          .map((b) => [b.getAttribute('aria-label') ?? b.textContent, b.getBoundingClientRect()])
          .filter(([, r]) => r.width === 0 || r.left < 0 || r.right > w)
          .map(([name, r]) => `${name} (${Math.round(r.left)}..${Math.round(r.right)})`),
      width)
      if (outside.length) throw new Error(`controls off screen: ${outside.join(', ')}`)
      await page.screenshot({ path: join(SHOTS, `layout-${width}.png`), fullPage: width >= 1280 })
      // The confirmation of the longest name fits too.
      await row(LONG).getByRole('button', { name: `Stop ${LONG}`, exact: true }).click()
      const yes = row(LONG).getByRole('button', { name: `Yes, stop ${LONG}`, exact: true })
      await yes.scrollIntoViewIfNeeded()
      const box = await yes.boundingBox()
      if (!box || box.x < 0 || box.x + box.width > width) throw new Error(`"Yes, stop" is off screen: ${JSON.stringify(box)}`)
      const wideNow = await page.evaluate(() => document.documentElement.scrollWidth)
      if (wideNow > width) throw new Error(`with the confirmation the page is ${wideNow}px wide`)
      await row(LONG).screenshot({ path: join(SHOTS, `confirm-${width}.png`) })
      await page.keyboard.press('Escape')
      await row(LONG).getByRole('button', { name: `Yes, stop ${LONG}`, exact: true }).waitFor({ state: 'detached' })
    })
  }

  await check('the log pane fits a phone, over the page', async () => {
    await page.setViewportSize({ width: 360, height: 740 })
    await row('ticker').getByRole('button', { name: 'Logs of ticker', exact: true }).click()
    await page.locator('section.logs pre').first().waitFor()
    const box = await page.locator('section.logs').boundingBox()
    if (!box || box.x < 0 || box.x + box.width > 360) throw new Error(`the pane is off screen: ${JSON.stringify(box)}`)
    await page.screenshot({ path: join(SHOTS, 'phone-logs.png') })
    await page.keyboard.press('Escape')
    await page.locator('section.logs').waitFor({ state: 'detached' })
  })

  await check('the dark scheme renders', async () => {
    await page.emulateMedia({ colorScheme: 'dark' })
    await page.screenshot({ path: join(SHOTS, 'phone-dark.png') })
    await page.setViewportSize({ width: 1280, height: 800 })
    await page.screenshot({ path: join(SHOTS, 'desktop-dark.png') })
    await page.emulateMedia({ colorScheme: 'light' })
  })

  const tabs = []
  await check('seven tabs share one event stream, and actions still work in the seventh', async () => {
    for (let i = 0; i < 6; i++) {
      const tab = await context.newPage()
      tab.setDefaultTimeout(secs(10))
      tab.on('pageerror', (e) => pageErrors.push(e.message))
      await tab.goto(url)
      await tab.locator('tbody[data-process="ticker"]').waitFor()
      tabs.push(tab)
    }
    const seventh = tabs[5]
    const pid = async () => Number(await seventh.locator('tbody[data-process="sleeper"] .pid').textContent())
    const before = await pid()
    await seventh.getByRole('button', { name: 'Restart sleeper', exact: true }).click()
    await until('sleeper restarted, seen in the seventh tab', secs(15), async () => {
      const now = await pid()
      return now > 0 && now !== before
    })
    // And the first tab hears of it over the shared stream.
    await until('the first tab shows the new pid', secs(10), async () => (await pidOf('sleeper')) === (await pid()))
  })

  await check('a session outlives a restart of the daemon', async () => {
    const shutdown = spawnSync(BIN, ['-c', 'daemon.toml', 'shutdown'], { cwd: dir, timeout: secs(20), encoding: 'utf8' })
    if (shutdown.status !== 0) throw new Error(`shutdown failed: ${shutdown.stderr}`)
    await until('the daemon exits', secs(10), () => daemon.exitCode != null || daemon.signalCode != null)
    await startDaemon()
    await page.reload()
    await row('ticker').waitFor()
    await page.locator('.live-dot.on').waitFor()
  })

  await check('Sign out in one tab signs every tab out, and the session is gone', async () => {
    await page.getByRole('button', { name: 'Sign out', exact: true }).click()
    await page.getByLabel('Token').waitFor()
    for (const tab of tabs) await tab.getByLabel('Token').waitFor()
    await page.reload()
    await page.getByLabel('Token').waitFor()
  })

  await check('the first paint comes quickly', async () => {
    const fresh = await context.newPage()
    await fresh.goto(url)
    await fresh.getByLabel('Token').waitFor()
    const paint = await fresh.evaluate(() => performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? -1)
    log(`first contentful paint: ${Math.round(paint)} ms`)
    if (!(paint > 0 && paint < 1000 * SCALE)) throw new Error(`first paint after ${paint} ms`)
  })

  if (process.env.E2E_MEASURE === '1') {
    await check('measured: 200 services, first paint and renderer CPU over 30 idle seconds', async () => {
      const big = mkdtempSync(join(tmpdir(), 'mi7e2e-200-'))
      const bigPort = await freePort()
      const services = Array.from(
        { length: 200 },
        (_, i) => `[[processes]]\nname = "svc-${String(i).padStart(3, '0')}"\ncommand = "sh"\nargs = ["-c", "exec sleep 100000"]\nmin_uptime = 0\n`,
      ).join('\n')
      writeFileSync(
        join(big, 'daemon.toml'),
        `[daemon]\npid_file = "d.pid"\ncheck_interval = 1\n\n[web]\nlisten = "127.0.0.1:${bigPort}"\ntoken = "${TOKEN}"\n\n${services}`,
      )
      const bigOut = openSync(join(big, 'daemon.log'), 'a')
      const bigDaemon = spawn(BIN, ['-c', 'daemon.toml', 'start'], { cwd: big, stdio: ['ignore', bigOut, bigOut] })
      const bigUrl = `http://127.0.0.1:${bigPort}/`
      try {
        await until(`the daemon serves ${bigUrl}`, secs(30), async () => (await fetch(bigUrl)).ok)
        const measured = await browser.newContext({ viewport: { width: 1280, height: 900 } })
        const tab = await measured.newPage()
        tab.setDefaultTimeout(secs(30))
        await tab.goto(bigUrl)
        await tab.getByLabel('Token').fill(TOKEN)
        await tab.getByRole('button', { name: 'Sign in', exact: true }).click()
        await until('200 rows run', secs(60), async () => (await tab.locator('.badge.ok').count()) === 200)
        await tab.reload()
        await tab.locator('tbody.proc').nth(199).waitFor()
        const paint = await tab.evaluate(() => performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? -1)
        const cdp = await measured.newCDPSession(tab)
        await cdp.send('Performance.enable')
        await new Promise((r) => setTimeout(r, 2000))
        const metrics = async () => Object.fromEntries((await cdp.send('Performance.getMetrics')).metrics.map((m) => [m.name, m.value]))
        const before = await metrics()
        await new Promise((r) => setTimeout(r, 30_000))
        const after = await metrics()
        const ms = (name) => Math.round((after[name] - before[name]) * 1000)
        log(
          `200 services: first contentful paint ${Math.round(paint)} ms (signed in, reload); over 30 idle s the renderer spent ` +
            `${ms('TaskDuration')} ms in tasks (script ${ms('ScriptDuration')} ms, layout ${ms('LayoutDuration')} ms, ` +
            `style ${ms('RecalcStyleDuration')} ms), ${after.LayoutCount - before.LayoutCount} layouts`,
        )
        await measured.close()
      } finally {
        spawnSync(BIN, ['-c', 'daemon.toml', 'shutdown', '--stop-all'], { cwd: big, timeout: secs(60) })
        if (bigDaemon.exitCode == null) bigDaemon.kill('SIGKILL')
        for (const pid of processesIn(big)) process.kill(pid, 'SIGKILL')
        rmSync(big, { recursive: true, force: true })
      }
    })
  }

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
