// Debian's Chromium, headless, for the viewer's browser test and the deployment benchmark. Not a test file.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import * as assert from 'node:assert/strict';
import type { BrowserContext, Page } from 'playwright-core';

/** The browser to drive: $AVAP_CHROMIUM, else Debian's chromium on PATH; null (with why) when there is none. */
export function findChromium(): { executable: string | null; reason: string } {
  const fromEnv = process.env.AVAP_CHROMIUM;
  if (fromEnv) return fs.existsSync(fromEnv) ? { executable: fromEnv, reason: '' } : { executable: null, reason: `AVAP_CHROMIUM=${fromEnv} does not exist` };
  const which = spawnSync('sh', ['-c', 'command -v chromium'], { encoding: 'utf8' });
  const found = which.stdout.trim();
  return found ? { executable: found, reason: '' } : { executable: null, reason: "Debian's chromium is not installed (scripts/setup.sh installs it with apt-get where it can)" };
}

/**
 * A fresh headless Chromium with its own empty profile. The flags keep it off the network (this
 * machine has none beyond the package registries; without them Chromium keeps trying) and off the GPU.
 */
export async function launchChromium(executable: string): Promise<{ context: BrowserContext; close: () => Promise<void> }> {
  const { chromium } = await import('playwright-core');
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'avap-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: executable, headless: true, viewport: { width: 1320, height: 860 },
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
  });
  return {
    context,
    close: async () => {
      await context.close();
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** The viewer at `url` in a new page, its model loaded; `failures` collects failed requests and 4xx/5xx answers. */
export async function openViewerPage(context: BrowserContext, url: string): Promise<{ page: Page; failures: string[]; state: () => Promise<string>; openFile: (file: string) => Promise<void> }> {
  const page = await context.newPage();
  const failures: string[] = [];
  page.on('requestfailed', (r) => failures.push(r.url()));
  page.on('response', (r) => { if (r.status() >= 400 && !r.url().endsWith('favicon.ico')) failures.push(`${r.status()} ${r.url()}`); });
  await page.goto(url);
  const state = () => page.evaluate(() => (globalThis as any).avapViewer.state as string); // eslint-disable-line @typescript-eslint/no-explicit-any
  const error = () => page.evaluate(() => (globalThis as any).avapViewer.error as string | null); // eslint-disable-line @typescript-eslint/no-explicit-any
  await page.waitForFunction(() => ['ready', 'error'].includes((globalThis as any).avapViewer.state), undefined, { timeout: 90_000 }); // eslint-disable-line @typescript-eslint/no-explicit-any
  assert.equal(await state(), 'ready', (await error()) ?? undefined);
  /** Chooses `file` in the file picker and waits for the page to finish with it. */
  const openFile = async (file: string) => {
    await page.setInputFiles('#file', file);
    await page.waitForFunction(() => ['done', 'error'].includes((globalThis as any).avapViewer.state), undefined, { timeout: 90_000 }); // eslint-disable-line @typescript-eslint/no-explicit-any
    assert.equal(await state(), 'done', (await error()) ?? undefined);
  };
  return { page, failures, state, openFile };
}
