// Path tricks at every depth of percent-encoding, against both allow-lists and the routes in
// front of them. A trick is refused by kas itself (403, 400 for what cannot be decoded, 404 for
// what names no agent) in the path's language, and never reaches an upstream; a harmless
// spelling is normalised and reaches it as the clean path.
import { type HttpCase, KUBE, PROM } from './case.ts';

const forbidden = (message?: RegExp) => ({ status: 403, body: 'language', ...(message ? { message } : {}) }) as const;
const undecodable = { status: 400, body: 'language', message: /percent-encoding/ } as const;
const notAnAgent = { status: 404, body: 'language', message: /1-63 characters|no such route|no route/ } as const;

/** Each of these, below the Prometheus base URL, must be refused (403) and reach nothing. */
const PROMETHEUS_TRICKS = [
  // climbing out of the allowed path, at each depth of encoding
  '/api/v1/query/../../../federate',
  '/api/v1/query/%2e%2e/%2e%2e/%2e%2e/federate',
  '/api/v1/query/%2E%2e/%2e%2E/%2E%2E/federate',
  '/api/v1/query/.%2e/%2e./.%2E/federate',
  '/api/v1/query/%252e%252e/%252e%252e/%252e%252e/federate',
  '/api/v1/query/%25252e%25252e/%25252e%25252e/federate',
  '/api/v1/query/%2525252e%2525252e/federate',
  '/api/v1/label/../../../api/v1/admin/tsdb/snapshot',
  '/api/v1/label/%2e%2e/%2e%2e/%2e%2e/api/v1/write',
  // encoded separators
  '/api%2fv1%2fadmin%2ftsdb%2fsnapshot',
  '/api%2Fv1%2Fwrite',
  '/api%252fv1%252fwrite',
  '/api/v1/query%2f..%2f..%2f..%2ffederate',
  '/api/v1/query%5c..%5c..%5cfederate',
  '/api/v1/query%5C..%5C..%5Cfederate',
  '/api/v1/query%255c..%255cfederate',
  '/api/v1/query\\..\\..\\..\\federate',
  '/api\\v1\\admin\\tsdb\\snapshot',
  // NUL and other bytes that end strings elsewhere
  '/api/v1/query%00',
  '/api/v1/query%00/../../federate',
  '/api/v1/query%2500',
  '/api/v1/admin%00/tsdb/snapshot',
  // path parameters (;), fragments, encoded query marks
  '/api/v1/query;jsessionid=x',
  '/api/v1/query;/../../../federate',
  '/api/v1/admin;/tsdb/snapshot',
  '/api/v1/query%3bx',
  '/api/v1/query%3f/../../federate',
  '/api/v1/query%23/../../../federate',
  // case games and look-alikes
  '/API/V1/QUERY',
  '/api/v1/Query',
  '/api/V1/query',
  '/api/v1/query%20',
  '/api/v1/query%09',
  '/api/v1/query.json',
  '/api/v1/query/extra',
  '/api/v1/label/a/b/values',
  '/api/v1/label//values',
  // what the allow-list keeps out, spelled plainly
  '/api/v1/admin/tsdb/snapshot',
  '/api/v1/admin/tsdb/delete_series',
  '/api/v1/write',
  '/api/v1/otlp/v1/metrics',
  '/api/v1/status/config',
  '/api/v1/status/flags',
  '/api/v1/targets',
  '/api/v1/rules',
  '/federate',
  '/-/reload',
  '/-/quit',
  '/graph',
  '/',
];

/** Each of these, below the Kubernetes base URL, must be refused (403) and reach nothing. */
const KUBERNETES_TRICKS = [
  '/api/v1/namespaces/default/pods/web-0/exec',
  '/api/v1/namespaces/default/pods/web-0/EXEC',
  '/api/v1/namespaces/default/pods/web-0/Exec',
  '/api/v1/namespaces/default/pods/web-0/exec;x',
  '/api/v1/namespaces/default/pods/web-0/exec%3bx',
  '/api/v1/namespaces/default/pods/web-0/exec?command=sh',
  '/api/v1/namespaces/default/pods/web-0/%65xec',
  '/api/v1/namespaces/default/pods/web-0/%2565xec',
  '/api/v1/namespaces/default/pods/web-0/%252565xec',
  '/api/v1/namespaces/default/pods/web-0/%25252565xec',
  '/api/v1/namespaces/default/pods/web-0%2fexec',
  '/api/v1/namespaces/default/pods/web-0%252fexec',
  '/api/v1/namespaces/default/pods/web-0/log/../exec',
  '/api/v1/namespaces/default/pods/web-0/log/%2e%2e/exec',
  '/api/v1/namespaces/default/pods/web-0/log/%252e%252e/exec',
  '/api/v1/namespaces/default/pods/web-0/./exec/',
  '/api/v1/namespaces/default/pods/web-0//exec',
  '/api/v1/namespaces/default/pods/web-0/attach',
  '/api/v1/namespaces/default/pods/web-0/ATTACH',
  '/api/v1/namespaces/default/pods/web-0/portforward',
  '/api/v1/namespaces/default/pods/web-0/PortForward',
  '/api/v1/namespaces/default/pods/web-0/proxy',
  '/api/v1/namespaces/default/pods/web-0:8080/proxy/',
  '/api/v1/namespaces/default/services/web:80/proxy/admin',
  '/api/v1/namespaces/default/services/web/PROXY',
  '/api/v1/nodes/node-1/proxy/metrics',
  '/api/v1/proxy/namespaces/default/pods/web-0',
  '/api/v1/PROXY/namespaces/default/pods/web-0',
  '/api/v1/namespaces/default/pods/web-0/LOG',
  '/api/v1/namespaces/default/pods/web-0/log;x',
  '/api/v1/namespaces/default/pods/web-0/log/extra',
  '/api/v1/namespaces/default/pods/web-0/binding',
  '/api/v1/namespaces/default/pods/web-0/eviction',
  '/api/v1/namespaces/default/pods/web-0/ephemeralcontainers',
  '/api/v1/namespaces/default/serviceaccounts/default/token',
  '/api/v1/namespaces/%2564efault/pods',
  '/api/v1/namespaces/default/pods/%25',
  '/api/%2576%2531/pods',
  '/apis/apps/v1/namespaces/default/deployments/web/%2573cale',
  '/logs/kube-apiserver.log',
  '/metrics',
  '/healthz',
  '/livez',
  '/readyz/etcd',
  '/debug/pprof/',
  '/',
  '/../api/v1/pods',
  '/%2e%2e/api/v1/pods',
];

export const pathCases: HttpCase[] = [
  ...PROMETHEUS_TRICKS.map((trick) => ({ name: 'a Prometheus path trick', path: `${PROM}${trick}`, expect: forbidden(/not allowed|refused|climbs above/) })),
  ...PROMETHEUS_TRICKS.slice(0, 12).map((trick) => ({
    name: 'a Prometheus path trick, as a form POST',
    method: 'POST',
    path: `${PROM}${trick}`,
    headers: [['Content-Type', 'application/x-www-form-urlencoded']] as const,
    body: 'query=up',
    expect: forbidden(/not allowed|refused|climbs above/),
  })),
  ...KUBERNETES_TRICKS.map((trick) => ({ name: 'a Kubernetes path trick', path: `${KUBE}${trick}`, expect: forbidden() })),

  // What cannot be decoded: overlong UTF-8, lone surrogates, bad escapes
  { name: 'an overlong UTF-8 dot-dot (%c0%ae)', paths: [`${PROM}/api/v1/query/%c0%ae%c0%ae/federate`, `${KUBE}/api/v1/namespaces/%c0%ae%c0%ae/pods`], expect: undecodable },
  { name: 'an overlong UTF-8 slash (%c0%af)', paths: [`${PROM}/api/v1/query%c0%affederate`, `${KUBE}/api/v1/namespaces/default%c0%afpods`], expect: undecodable },
  { name: 'a three-byte overlong dot (%e0%80%ae)', paths: [`${PROM}/api/v1/%e0%80%ae%e0%80%ae/federate`, `${KUBE}/api/%e0%80%ae%e0%80%ae/v1/pods`], expect: undecodable },
  { name: 'an encoded lone surrogate (%ed%a0%80)', paths: [`${PROM}/api/v1/label/%ed%a0%80/values`, `${KUBE}/api/v1/namespaces/%ed%a0%80/pods`], expect: undecodable },
  { name: 'a bad percent escape', paths: [`${PROM}/api/v1/%zz`, `${PROM}/api/v1/query%`, `${KUBE}/api/v1/namespaces/%g1/pods`, `${KUBE}/api/v1/%2`], expect: undecodable },
  { name: 'a %u escape (IIS style)', paths: [`${PROM}/api/v1/query/%u002e%u002e/federate`, `${KUBE}/api/v1/namespaces/default/pods/web-0/%u0065xec`], expect: undecodable },

  // Harmless spellings: normalised, and the upstream sees the clean path
  {
    name: 'a harmless spelling of an allowed Prometheus path (normalised)',
    paths: [`${PROM}/api/v1/query/?query=up`, `${PROM}//api//v1//query?query=up`, `${PROM}/./api/./v1/query?query=up`, `${PROM}/api/v1/labels/../query?query=up`, `${PROM}/api/v1/%71uery?query=up`, `${PROM}/api/v1/query/.?query=up`],
    expect: { status: 200, body: 'json', message: /"status":"success"/ },
  },
  {
    name: 'a harmless spelling of an allowed Kubernetes path (normalised)',
    paths: [`${KUBE}/api/v1//namespaces/./default/pods`, `${KUBE}/api/v1/namespaces/default/configmaps/../pods`, `${KUBE}/api/v1/namespaces/%64efault/pods`, `${KUBE}/api/v1/namespaces/default/pods/`],
    expect: { status: 200, body: 'json', message: /"kind":"PodList"/ },
  },
  { name: 'a namespace called watch is a list, not a watch', path: `${KUBE}/api/v1/namespaces/watch/pods`, expect: { status: 200, body: 'json', message: /"kind":"PodList"/ } },
  { name: 'a pod called exec is a pod', path: `${KUBE}/api/v1/namespaces/default/pods/exec`, expect: { status: 404, reached: true, body: 'json', message: /NotFound/ } },
  { name: 'a pod log (a read subresource)', path: `${KUBE}/api/v1/namespaces/default/pods/web-0/log`, expect: { status: 200, reached: true } },
  { name: 'a pod name with an encoded semicolon is a name', path: `${KUBE}/api/v1/namespaces/default/pods/web-0%3bexec`, expect: { status: 404, reached: true, body: 'json', message: /NotFound/ } },

  // The routes in front: agent ids and capabilities
  // `..` is a well-formed agent id (A-Za-z0-9._-): kas takes it as that agent, which the token does not reach.
  { name: 'an agent id that climbs', path: '/api/v1/agents/../agents/good/prometheus/api/v1/query?query=up', expect: { status: 403, body: 'kas', message: /agent \.\./ } },
  { name: 'an encoded agent id that climbs', path: '/api/v1/agents/%2e%2e/good/prometheus/api/v1/query?query=up', expect: notAnAgent },
  { name: 'an agent id with an encoded slash', paths: ['/api/v1/agents/good%2f..%2fother/prometheus/api/v1/query?query=up', '/api/v1/agents/good%2fprometheus/api/v1/query?query=up'], expect: notAnAgent },
  { name: 'an agent id with a NUL', paths: ['/api/v1/agents/good%00/prometheus/api/v1/query?query=up', '/api/v1/agents/good%00'], expect: notAnAgent },
  { name: 'an agent id of 64 characters', path: `/api/v1/agents/${'g'.repeat(64)}/prometheus/api/v1/query?query=up`, expect: notAnAgent },
  { name: 'an agent id in another case', paths: ['/api/v1/agents/GOOD/prometheus/api/v1/query?query=up', '/api/v1/agents/Good'], expect: { status: 403, body: 'language', message: /does not grant access/ } },
  { name: 'another agent (out of the token\'s scope)', paths: ['/api/v1/agents/other/prometheus/api/v1/query?query=up', '/api/v1/agents/other/kubernetes/api/v1/pods', '/api/v1/agents/other'], expect: { status: 403, body: 'language', message: /does not grant access to agent other/ } },
  { name: 'a capability kas does not offer', paths: ['/api/v1/agents/good/loki/api/v1/query', '/api/v1/agents/good/prometheusx/api/v1/query'], expect: { status: 404, body: 'kas', message: /kas offers no/ } },
  { name: 'a capability in upper case', path: '/api/v1/agents/good/PROMETHEUS/api/v1/query?query=up', expect: { status: 404, body: 'kas', message: /no such route|no route/ } },
  { name: 'an encoded capability name', path: '/api/v1/agents/good/%70rometheus/api/v1/query?query=up', expect: { status: 404, body: 'kas', message: /no such route|no route/ } },
  { name: 'the API root and near misses', paths: ['/api', '/api/v2/agents', '/api/v1/agent/good', '/API/v1/agents'], expect: { status: 404, body: 'kas' } },

  // Request-target forms other than origin-form
  { name: 'an absolute-form target naming another host', path: 'http://evil.example/api/v1/agents/good/prometheus/api/v1/query?query=up', expect: { status: 404, body: 'kas' } },
  { name: 'the asterisk form', method: 'OPTIONS', path: '*', expect: { status: 404, body: 'kas' } },
  { name: 'a target without a leading slash', path: 'api/v1/agents/good', expect: { status: 400, body: 'kas', message: /not valid HTTP/ } },
];
