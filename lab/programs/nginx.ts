// The lab's stand-in for the nginx image: an HTTP server on port 80 (PORT) that answers every GET
// with a small page naming the pod, its node and its address, so a request's answer tells who
// served it. Runs inside a pod's network namespace.
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:http';

const port = Number(process.env.PORT ?? 80);
const who = `${process.env.POD_NAME ?? 'nginx'} on ${process.env.NODE_NAME ?? 'unknown'} (${process.env.POD_IP ?? 'unknown'})`;

const server = createServer((req, res) => {
  const body = `<!DOCTYPE html>\n<html><head><title>Welcome to nginx!</title></head>\n<body><h1>Welcome to nginx!</h1><p>served by ${who}</p><p>${req.method} ${req.url}</p></body></html>\n`;
  res.writeHead(200, { 'content-type': 'text/html', 'x-served-by': who, connection: 'close' }).end(body);
});
server.listen(port, () => {
  process.stdout.write(`nginx (lab) listening on :${port} as ${who}\n`);
  if (process.env.LAB_READY_FILE) writeFileSync(process.env.LAB_READY_FILE, 'ready\n');
});
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}
