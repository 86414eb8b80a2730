import { openExportedModel } from '../src/export/export';
import { serveSite } from '../src/viewer/server';
import { viewerSite } from '../src/viewer/site';
import { launchChromium } from './chromium';

async function main() {
  const [model, image, out, overlay, structure, annotator] = process.argv.slice(2);
  const server = await serveSite(viewerSite(openExportedModel(model)), 0);
  const b = await launchChromium('/usr/bin/chromium');
  const page = await b.context.newPage();
  await page.setViewportSize({ width: 1240, height: 780 });
  await page.goto(server.url);
  await page.waitForFunction(() => (globalThis as any).avapViewer.state === 'ready', undefined, { timeout: 120000 });
  await page.setInputFiles('#file', image);
  await page.waitForFunction(() => (globalThis as any).avapViewer.state === 'done', undefined, { timeout: 120000 });
  await page.click(`input[name=overlay][value="${overlay}"]`);
  await page.selectOption('#structure', structure);
  await page.click(`input[name=annotator][value="${annotator}"]`);
  await page.screenshot({ path: out });
  await b.close(); await server.close();
}
main();
