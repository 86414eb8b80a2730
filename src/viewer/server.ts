// `avap view`: serves the viewer's files on this machine only. The page is cross-origin isolated
// (COOP/COEP headers) so that onnxruntime-web may use WebAssembly threads.
import * as fs from 'node:fs';
import * as http from 'node:http';
import { AddressInfo } from 'node:net';
import { UserError } from '../errors';
import { SiteFile } from './site';

export interface RunningViewer {
  url: string;
  close(): Promise<void>;
}

const HEADERS = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cache-Control': 'no-store',
  'X-Content-Type-Options': 'nosniff',
};

export function serveSite(site: SiteFile[], port: number, host = '127.0.0.1'): Promise<RunningViewer> {
  const files = new Map(site.map((f) => [f.path, f]));
  const server = http.createServer((req, res) => {
    const urlPath = decodeURIComponent(new URL(req.url ?? '/', 'http://localhost').pathname).replace(/^\/+/, '');
    const file = files.get(urlPath === '' ? 'index.html' : urlPath);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD' }).end();
    } else if (!file) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
    } else if (typeof file.source === 'string') {
      res.writeHead(200, { ...HEADERS, 'Content-Type': file.type, 'Content-Length': fs.statSync(file.source).size });
      if (req.method === 'HEAD') res.end();
      else fs.createReadStream(file.source).pipe(res);
    } else {
      res.writeHead(200, { ...HEADERS, 'Content-Type': file.type, 'Content-Length': file.source.byteLength });
      res.end(req.method === 'HEAD' ? undefined : file.source);
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      reject(err.code === 'EADDRINUSE' ? new UserError(`--port: ${port} is already in use on ${host}`)
        : err.code === 'EACCES' ? new UserError(`--port: not allowed to listen on ${port}`) : err);
    });
    server.listen(port, host, () => {
      const { port: actual } = server.address() as AddressInfo;
      resolve({
        url: `http://${host}:${actual}/`,
        close: () => new Promise<void>((done) => {
          server.closeAllConnections();
          server.close(() => done());
        }),
      });
    });
  });
}
