// `avap view`: serves the viewer's files on this machine only. The page is cross-origin isolated
// (COOP/COEP headers) so that onnxruntime-web may use WebAssembly threads.
//
// Only requests addressed to the served address are answered: a web page elsewhere can make a
// browser send requests to 127.0.0.1 under a name of its own (DNS rebinding), and would then read
// the model; its requests carry that name in `Host`, so they get 421. Any other address than loopback
// is taken only when the caller says so (`--allow-remote`): the model is then readable by anyone who
// can reach the machine.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import { UserError } from '../errors';
import { SiteFile } from './site';

export interface RunningViewer {
  url: string;
  close(): Promise<void>;
}

export interface ServeOptions {
  /** Address to listen on (default 127.0.0.1); anything but loopback needs `allowRemote`. */
  host?: string;
  allowRemote?: boolean;
}

const HEADERS = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cache-Control': 'no-store',
  'X-Content-Type-Options': 'nosniff',
};

/** 127.0.0.0/8, ::1 (also as ::ffff:127.x) and 'localhost'. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  const v4 = h.startsWith('::ffff:') ? h.slice(7) : h;
  return net.isIPv4(v4) && v4.startsWith('127.');
}

/** The names a request may address this server by: loopback names, the --host given, and for a wildcard every address of the machine. */
function allowedHostNames(host: string): Set<string> {
  const names = new Set(['127.0.0.1', 'localhost', '[::1]', host.toLowerCase()]);
  if (net.isIPv6(host)) names.add(`[${host.toLowerCase()}]`);
  if (host === '0.0.0.0' || host === '::') {
    names.add(os.hostname().toLowerCase());
    for (const list of Object.values(os.networkInterfaces())) {
      for (const a of list ?? []) names.add(a.family === 'IPv6' ? `[${a.address.toLowerCase()}]` : a.address);
    }
  }
  return names;
}

/** `Host: name:port` names this server (the port may be left out only when it is 80). */
function hostMatches(header: string | undefined, names: Set<string>, port: number): boolean {
  if (!header) return false;
  const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(header.trim().toLowerCase());
  if (!m) return false;
  const p = m[2] === undefined ? 80 : Number(m[2]);
  return p === port && names.has(m[1].replace(/\.$/, ''));
}

function plain(res: http.ServerResponse, status: number, text: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store' }).end(`${text}\n`);
}

function answer(req: http.IncomingMessage, res: http.ServerResponse, files: Map<string, SiteFile>, names: Set<string>, port: number): void {
  if (!hostMatches(req.headers.host, names, port)) {
    plain(res, 421, 'misdirected request: this viewer answers only requests addressed to the address it serves');
    return;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { Allow: 'GET, HEAD' }).end();
    return;
  }
  let urlPath: string;
  try {
    urlPath = decodeURIComponent(new URL(req.url ?? '/', 'http://localhost').pathname).replace(/^\/+/, '');
  } catch {
    plain(res, 400, 'bad request: the URL is malformed');
    return;
  }
  const file = files.get(urlPath === '' ? 'index.html' : urlPath);
  if (!file) {
    plain(res, 404, 'not found');
  } else if (typeof file.source === 'string') {
    const size = fs.statSync(file.source).size;
    res.writeHead(200, { ...HEADERS, 'Content-Type': file.type, 'Content-Length': size });
    if (req.method === 'HEAD') res.end();
    else fs.createReadStream(file.source).on('error', () => res.destroy()).pipe(res);
  } else {
    res.writeHead(200, { ...HEADERS, 'Content-Type': file.type, 'Content-Length': file.source.byteLength });
    res.end(req.method === 'HEAD' ? undefined : file.source);
  }
}

/** The one-line reason a listen failed, naming the flag at fault. */
function listenError(err: NodeJS.ErrnoException, port: number, host: string): Error {
  switch (err.code) {
    case 'EADDRINUSE': return new UserError(`--port: ${port} is already in use on ${host}`);
    case 'EACCES': return new UserError(`--port: not allowed to listen on ${port}`);
    case 'EADDRNOTAVAIL': return new UserError(`--host: ${host} is not an address of this machine`);
    case 'ENOTFOUND': case 'EAI_AGAIN': case 'EAI_FAIL': case 'EAI_NONAME':
      return new UserError(`--host: cannot resolve '${host}' to an address of this machine`);
    case 'EAFNOSUPPORT': case 'EINVAL': return new UserError(`--host: cannot listen on '${host}' (${err.code})`);
    default: return err;
  }
}

/** Throws one line naming --host when it is empty, or not loopback without `allowRemote`. */
export function checkServeHost(host: string, allowRemote = false): void {
  if (host.trim() === '') throw new UserError('--host: the address is empty (default 127.0.0.1)');
  if (!isLoopback(host) && !allowRemote) {
    throw new UserError(`--host: ${host} is not a loopback address; the model would be served to every machine that can reach it: add --allow-remote if that is what you want`);
  }
}

export async function serveSite(site: SiteFile[], port: number, options: ServeOptions = {}): Promise<RunningViewer> {
  const host = options.host ?? '127.0.0.1';
  checkServeHost(host, options.allowRemote);
  const files = new Map(site.map((f) => [f.path, f]));
  const names = allowedHostNames(host);
  let actualPort = port;
  const server = http.createServer((req, res) => {
    // Whatever a request holds, it is answered, and the server keeps serving.
    try {
      answer(req, res, files, names, actualPort);
    } catch {
      plain(res, 500, 'internal error');
    }
  });
  server.on('clientError', (_err, socket) => socket.destroy());
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(listenError(err, port, host)));
    server.listen(port, host, () => {
      const { port: actual } = server.address() as net.AddressInfo;
      actualPort = actual;
      resolve({
        url: `http://${net.isIPv6(host) ? `[${host}]` : host}:${actual}/`,
        close: () => new Promise<void>((done) => {
          server.closeAllConnections();
          server.close(() => done());
        }),
      });
    });
  });
}
