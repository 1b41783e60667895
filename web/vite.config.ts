// The build of the web UI. Besides bundling, it leaves web/dist/ exactly as
// the daemon embeds it: every output file F gets a sibling F.gz (the daemon
// embeds and serves only the compressed copies), and SOURCE_HASH records which
// sources the bundle was built from, so that `cargo xtask test` can tell,
// without Node, that web/dist/ is stale.
//
// SOURCE_HASH is the SHA-256 of a manifest in `sha256sum`'s format, one line
// `<sha256 of the file>  <path>\n` per source file, sorted by path (relative
// to web/, '/'-separated). The sources are index.html, package.json,
// pnpm-lock.yaml, tsconfig.json, vite.config.* and everything under src/.
// xtask/src/web.rs computes the same hash in Rust: change both together.

import { createHash } from 'node:crypto'
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join, relative, resolve, sep } from 'node:path'
import { constants, gzipSync } from 'node:zlib'
import type { Plugin } from 'vite'
import { defineConfig } from 'vitest/config'

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    return statSync(path).isDirectory() ? walk(path) : [path]
  })
}

const ROOT_SOURCES = ['index.html', 'package.json', 'pnpm-lock.yaml', 'tsconfig.json']

export function sourceHash(web: string): string {
  const files = [
    ...ROOT_SOURCES,
    ...readdirSync(web).filter((name) => name.startsWith('vite.config.')),
    ...walk(join(web, 'src')).map((path) => relative(web, path).split(sep).join('/')),
  ].sort()
  const manifest = files
    .map((file) => `${createHash('sha256').update(readFileSync(join(web, file))).digest('hex')}  ${file}\n`)
    .join('')
  return createHash('sha256').update(manifest).digest('hex')
}

function gzipAndStamp(): Plugin {
  let root = ''
  let outDir = ''
  return {
    name: 'mi7soft-gzip-and-stamp',
    apply: 'build',
    configResolved(config) {
      root = config.root
      outDir = resolve(config.root, config.build.outDir)
    },
    closeBundle() {
      let total = 0
      for (const file of walk(outDir).sort()) {
        if (file.endsWith('.gz') || file.endsWith('SOURCE_HASH')) continue
        // gzipSync writes no name and no mtime, so the output is reproducible.
        const gz = gzipSync(readFileSync(file), { level: constants.Z_BEST_COMPRESSION })
        writeFileSync(`${file}.gz`, gz)
        total += gz.length
      }
      writeFileSync(join(outDir, 'SOURCE_HASH'), `${sourceHash(root)}\n`)
      console.log(`gzip: ${total} bytes in all .gz files of ${relative(root, outDir)}/`)
    },
  }
}

export default defineConfig({
  base: './',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2020',
    modulePreload: { polyfill: false },
    reportCompressedSize: false,
  },
  plugins: [gzipAndStamp()],
  test: {
    environment: 'happy-dom',
    include: ['test/**/*.test.{ts,tsx}'],
  },
})
