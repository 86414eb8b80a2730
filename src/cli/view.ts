import { Command } from 'commander';
import { openExportedModel } from '../export/export';
import { checkServeHost, serveSite } from '../viewer/server';
import { viewerSite } from '../viewer/site';
import { parseIntFlag } from '../util/flags';

/** `avap view`: serves the browser viewer for a run or an exported model until interrupted. */
export function registerViewCommand(program: Command): void {
  program
    .command('view')
    .description('open a model in the browser viewer: the model runs in the page (onnxruntime-web); drop a fundus image to see every annotator')
    .requiredOption('--model <path>', 'a trained run folder (exported in memory) or an exported .onnx file')
    .option('--port <n>', 'port to listen on (0: any free port)', '8080')
    .option('--host <address>', 'address to listen on: a loopback address (127.0.0.1, ::1, localhost) unless --allow-remote', '127.0.0.1')
    .option('--allow-remote', 'let --host be an address other machines can reach (0.0.0.0: every interface); anyone who reaches it can download the model', false)
    .action(async (o: { model: string; port: string; host: string; allowRemote: boolean }) => {
      const port = parseIntFlag('--port', o.port, 0, 65535);
      checkServeHost(o.host, o.allowRemote);
      const site = viewerSite(openExportedModel(o.model));
      const viewer = await serveSite(site, port, { host: o.host, allowRemote: o.allowRemote });
      process.stdout.write(`avap viewer: ${viewer.url} (Ctrl+C to stop)\n`);
      await new Promise<void>((resolve) => {
        const stop = () => void viewer.close().then(resolve);
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
    });
}
