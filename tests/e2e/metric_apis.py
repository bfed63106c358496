"""Loopback stand-ins for the SaaS metric APIs canaryd's MetricTemplate providers call, written
from each API's documentation and strict about it: a request with a wrong method, path, query
parameter, header or body is answered 400 with a message that starts "strict:", so a test sees it.

  datadog    GET  /api/v1/query?query=&from=&to=        DD-API-KEY, DD-APPLICATION-KEY
             GET  /api/v1/validate
  newrelic   GET  /v1/accounts/<id>/query?nrql=<q> SINCE <n> seconds ago   X-Query-Key
  dynatrace  GET  /api/v2/metrics/query?metricSelector=&resolution=Inf&from=&to=  Authorization: Api-Token
             GET  /api/v2/metrics?pageSize=1
  influxdb   POST /api/v2/query?org=<org>  Authorization: Token, JSON body {query, type: flux, dialect}
  cloudwatch POST /  X-Amz-Target: GraniteServiceVersion20100801.GetMetricData, AWS JSON 1.0,
             SigV4 (service monitoring, region us-east-1) verified with CREDENTIALS' aws keys
  sts        POST /  Action=AssumeRoleWithWebIdentity (form) with CREDENTIALS'
             aws_web_identity_token (or one of aws_web_identity_tokens), answers temporary keys
             that cloudwatch then accepts with their session token, expiring as the block of
             container_credentials below says
  google     POST /token  RFC 7523 JWT bearer grant: the RS256 signature verified with
             CREDENTIALS' google_rsa_n (hex modulus, e = 65537), then an access token
  stackdriver POST /v3/projects/<project>/timeSeries:query  Bearer <a token /token issued>, {"query"}
  splunk     GET  /v2/metric?limit=1  X-SF-Token; GET /v2/signalflow/connect: SignalFlow over a
             WebSocket (class SignalFlow)
  container_credentials GET /v1/credentials, imds PUT /latest/api/token + GET /latest/meta-data/...:
             the AWS credential sources (their block below says how)

What a query answers is chosen by the word after "scenario" in it: good (0.5), bad (5), empty
(no series), nan (a null or NaN value), throttled (429), slow (answers after 7 s).
A wrong credential is answered 401/403 as each API documents.

Every request is appended to LOG as one JSON line: {"api", "method", "path", "params",
"headers", "body", "status", "answer"}.

usage: metric_apis.py PORT CREDENTIALS_JSON LOG
"""
import base64
import datetime
import gzip
import hashlib
import hmac
import http.server
import json
import re
import struct
import sys
import threading
import time
import urllib.parse

PORT = int(sys.argv[1])
CREDS = json.loads(sys.argv[2])
LOG = sys.argv[3]
LOCK = threading.Lock()


def scenario(text):
    m = re.search(r'scenario\W+(\w+)', text)
    return m.group(1) if m else ''


class Reject(Exception):
    def __init__(self, status, body, content_type='application/json'):
        super().__init__(body)
        self.status, self.body, self.content_type = status, body, content_type


def strict(cond, what):
    if not cond:
        raise Reject(400, 'strict: ' + what, 'text/plain')


def exact_params(params, names):
    strict(sorted(params) == sorted(names), 'parameters %s, want %s' % (sorted(params), sorted(names)))
    for k, v in params.items():
        strict(len(v) == 1, 'parameter %s given %d times' % (k, len(v)))
    return {k: v[0] for k, v in params.items()}


def integer(v, what):
    strict(re.fullmatch(r'[0-9]+', v or '') is not None, '%s is not an integer: %r' % (what, v))
    return int(v)


def window(frm, to, unit):
    now = time.time() * unit
    strict(abs(to - now) <= 30 * unit, 'to %d is not now (%d)' % (to, now))
    strict(frm < to, 'from %d is not before to %d' % (frm, to))


def throttle_or_sleep(s):
    if s == 'throttled':
        raise Reject(429, json.dumps({'errors': ['Rate limit exceeded']}))
    if s == 'slow':
        time.sleep(7)


def datadog(h, method, path, params, body):
    strict(method == 'GET', 'datadog wants GET, got ' + method)
    if h.headers.get('DD-API-KEY') != CREDS['datadog_api_key'] or \
            h.headers.get('DD-APPLICATION-KEY') != CREDS['datadog_application_key']:
        raise Reject(403, json.dumps({'errors': ['Forbidden']}))
    if path == '/api/v1/validate':
        exact_params(params, [])
        return {'valid': True}
    strict(path == '/api/v1/query', 'datadog has no ' + path)
    p = exact_params(params, ['query', 'from', 'to'])
    frm, to = integer(p['from'], 'from'), integer(p['to'], 'to')
    window(frm, to, 1)
    s = scenario(p['query'])
    throttle_or_sleep(s)
    # Two points: the oldest first. The newest bucket is usually incomplete and holds the
    # opposite value, so a provider that reads it gets the wrong answer.
    values = {'good': [0.5, 9.0], 'bad': [5.0, 0.1], 'nan': [None, 0.1]}
    series = []
    if s in values:
        series = [{'metric': 'scenario', 'scope': 'scenario:' + s, 'interval': 60, 'length': 2,
                   'pointlist': [[frm * 1000.0, values[s][0]], [(to - 60) * 1000.0, values[s][1]]]}]
    return {'status': 'ok', 'res_type': 'time_series', 'query': p['query'], 'from_date': frm * 1000,
            'to_date': to * 1000, 'series': series}


def newrelic(h, method, path, params, body):
    strict(method == 'GET', 'newrelic wants GET, got ' + method)
    m = re.fullmatch(r'/v1/accounts/([^/]+)/query', path)
    strict(m is not None, 'newrelic has no ' + path)
    strict(m.group(1) == CREDS['newrelic_account_id'], 'account ' + m.group(1))
    if h.headers.get('X-Query-Key') != CREDS['newrelic_query_key']:
        raise Reject(401, json.dumps({'error': 'Invalid query key'}))
    p = exact_params(params, ['nrql'])
    since = re.fullmatch(r'(.*) SINCE ([0-9]+) seconds ago', p['nrql'], re.DOTALL)
    strict(since is not None, 'nrql without SINCE <n> seconds ago: ' + p['nrql'])
    s = scenario(since.group(1))
    throttle_or_sleep(s)
    results = {'good': [{'result': 0.5}], 'bad': [{'result': 5.0}], 'nan': [{'result': None}], 'empty': []}
    return {'results': results.get(s, [{'count': 0}]), 'metadata': {'eventTypes': ['Metric']}}


def dynatrace(h, method, path, params, body):
    strict(method == 'GET', 'dynatrace wants GET, got ' + method)
    if h.headers.get('Authorization') != 'Api-Token ' + CREDS['dynatrace_token']:
        raise Reject(401, json.dumps({'error': {'code': 401, 'message': 'Token Authentication failed'}}))
    if path == '/api/v2/metrics':
        p = exact_params(params, ['pageSize'])
        strict(p['pageSize'] == '1', 'pageSize ' + p['pageSize'])
        return {'totalCount': 1, 'nextPageKey': None, 'metrics': [{'metricId': 'builtin:service.response.time'}]}
    strict(path == '/api/v2/metrics/query', 'dynatrace has no ' + path)
    p = exact_params(params, ['metricSelector', 'resolution', 'from', 'to'])
    strict(p['resolution'] == 'Inf', 'resolution ' + p['resolution'])
    frm, to = integer(p['from'], 'from'), integer(p['to'], 'to')
    window(frm, to, 1000)
    s = scenario(p['metricSelector'])
    throttle_or_sleep(s)
    # Flagger reads the last data entry; the first holds the opposite value.
    values = {'good': [9.0, 0.5], 'bad': [0.1, 5.0], 'nan': [0.1, None]}
    data = []
    if s in values:
        data = [{'dimensions': [d], 'dimensionMap': {'dt.entity.service': d}, 'timestamps': [to],
                 'values': [v]} for d, v in zip(['SERVICE-1', 'SERVICE-2'], values[s])]
    return {'totalCount': 1, 'nextPageKey': None, 'resolution': 'Inf',
            'result': [{'metricId': p['metricSelector'], 'dataPointCountRatio': 0.0001,
                        'dimensionCountRatio': 0.001, 'data': data}]}


INFLUX_HEAD = ('#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,dateTime:RFC3339,double,string,string\r\n'
               '#group,false,false,true,true,false,false,true,true\r\n'
               '#default,_result,,,,,,,\r\n'
               ',result,table,_start,_stop,_time,_value,_field,_measurement\r\n')


def influxdb(h, method, path, params, body):
    strict(method == 'POST', 'influxdb wants POST, got ' + method)
    strict(path == '/api/v2/query', 'influxdb has no ' + path)
    p = exact_params(params, ['org'])
    if h.headers.get('Authorization') != 'Token ' + CREDS['token']:
        raise Reject(401, json.dumps({'code': 'unauthorized', 'message': 'unauthorized access'}))
    if p['org'] != CREDS['org']:
        raise Reject(404, json.dumps({'code': 'not found', 'message': 'organization name "%s" not found' % p['org']}))
    strict(h.headers.get('Content-Type') == 'application/json', 'Content-Type ' + str(h.headers.get('Content-Type')))
    try:
        q = json.loads(body)
    except ValueError:
        raise Reject(400, 'strict: the body is not JSON', 'text/plain')
    strict(q.get('type') == 'flux', 'type %r' % q.get('type'))
    strict(isinstance(q.get('query'), str) and q['query'], 'no query')
    d = q.get('dialect', {})
    strict(d.get('annotations') == ['datatype', 'group', 'default'] and d.get('header') is True and
           d.get('delimiter') == ',', 'dialect %r' % d)
    s = scenario(q['query'])
    throttle_or_sleep(s)
    rows = {'good': '0.5', 'bad': '5', 'nan': 'NaN'}
    if s not in rows:
        return ('\r\n', 'text/csv; charset=utf-8')
    t = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())
    return (INFLUX_HEAD + ',,0,%s,%s,%s,%s,value,scenario\r\n\r\n' % (t, t, t, rows[s]), 'text/csv; charset=utf-8')


# Temporary credentials handed out by sts: access key id -> (secret, session token).
TEMPORARY = {}


def sigv4_verify(h, method, path, query, body):
    """Recomputes the SigV4 signature of the request as AWS documents it and compares."""
    auth = h.headers.get('Authorization', '')
    m = re.fullmatch(r'AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, '
                     r'SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})', auth)
    if not m:
        raise Reject(403, json.dumps({'__type': 'IncompleteSignatureException', 'message': 'bad Authorization: ' + auth}))
    key_id, day, region, service, signed, signature = m.groups()
    if key_id == CREDS['aws_access_key_id']:
        secret, token = CREDS['aws_secret_access_key'], None
    elif key_id in TEMPORARY:
        secret, token = TEMPORARY[key_id]
    else:
        raise Reject(403, json.dumps({'__type': 'UnrecognizedClientException',
                                      'message': 'The security token included in the request is invalid.'}))
    if token is not None and h.headers.get('X-Amz-Security-Token') != token:
        raise Reject(403, json.dumps({'__type': 'UnrecognizedClientException', 'message': 'bad session token'}))
    if region != 'us-east-1':
        raise Reject(403, json.dumps({'__type': 'SignatureDoesNotMatch',
                                      'message': "Credential should be scoped to a valid region, not '%s'." % region}))
    strict(service == 'monitoring', 'signed for service ' + service)
    names = signed.split(';')
    for need in ('host', 'x-amz-date', 'content-type', 'x-amz-target'):
        strict(need in names, need + ' is not signed')
    if token is not None:
        strict('x-amz-security-token' in names, 'x-amz-security-token is not signed')
    amz_date = h.headers.get('X-Amz-Date', '')
    when = datetime.datetime.strptime(amz_date, '%Y%m%dT%H%M%SZ').replace(tzinfo=datetime.timezone.utc)
    strict(abs((datetime.datetime.now(datetime.timezone.utc) - when).total_seconds()) < 300, 'X-Amz-Date ' + amz_date)
    strict(amz_date[:8] == day, 'scope date %s, X-Amz-Date %s' % (day, amz_date))
    headers = ''.join('%s:%s\n' % (n, ' '.join(h.headers.get(n, '').split())) for n in names)
    canonical = '\n'.join([method, path, query, headers, signed, hashlib.sha256(body.encode()).hexdigest()])
    scope = '%s/%s/%s/aws4_request' % (day, region, service)
    to_sign = '\n'.join(['AWS4-HMAC-SHA256', amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    k = ('AWS4' + secret).encode()
    for part in (day, region, service, 'aws4_request'):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    want = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    if want != signature:
        raise Reject(403, json.dumps({'__type': 'SignatureDoesNotMatch',
                                      'message': 'The request signature we calculated does not match the signature you provided.'}))


def cloudwatch(h, method, path, params, body):
    strict(method == 'POST' and path == '/', 'cloudwatch wants POST /, got %s %s' % (method, path))
    strict(h.headers.get('X-Amz-Target') == 'GraniteServiceVersion20100801.GetMetricData',
           'X-Amz-Target ' + str(h.headers.get('X-Amz-Target')))
    strict(h.headers.get('Content-Type') == 'application/x-amz-json-1.0', 'Content-Type ' + str(h.headers.get('Content-Type')))
    sigv4_verify(h, method, path, urllib.parse.urlsplit(h.path).query, body)
    q = json.loads(body)
    strict(sorted(q) == ['EndTime', 'MaxDatapoints', 'MetricDataQueries', 'StartTime'] or
           (q.get('MetricDataQueries') == [] and q.get('StartTime') == 0), 'fields %s' % sorted(q))
    if not q['MetricDataQueries']:
        raise Reject(400, json.dumps({'__type': 'InvalidParameterValueException',
                                      'message': 'The parameter MetricDataQueries must be specified.'}))
    strict(q['MaxDatapoints'] == 20, 'MaxDatapoints %r' % q['MaxDatapoints'])
    window(q['StartTime'], q['EndTime'], 1)
    s = scenario(json.dumps(q['MetricDataQueries']))
    throttle_or_sleep(s)
    values = {'good': [0.5, 9.0], 'bad': [5.0, 0.1]}.get(s, [])
    end = q['EndTime']
    return {'MetricDataResults': [{'Id': q['MetricDataQueries'][0].get('Id', 'q'), 'Label': 'errors',
                                   'Timestamps': [end - 60 * i for i in range(len(values))], 'Values': values,
                                   'StatusCode': 'Complete'}], 'Messages': []}


def sts(h, method, path, params, body):
    strict(method == 'POST' and path == '/', 'sts wants POST /')
    strict(h.headers.get('Content-Type', '').startswith('application/x-www-form-urlencoded'), 'Content-Type')
    f = {k: v[0] for k, v in urllib.parse.parse_qs(body).items()}
    strict(f.get('Action') == 'AssumeRoleWithWebIdentity' and f.get('Version') == '2011-06-15', 'action %r' % f)
    strict(f.get('RoleArn') == CREDS['aws_role_arn'], 'RoleArn %r' % f.get('RoleArn'))
    strict(bool(f.get('RoleSessionName')), 'no RoleSessionName')
    # One token, or the tokens a rotation hands out in turn (aws_web_identity_tokens).
    if f.get('WebIdentityToken') not in CREDS.get('aws_web_identity_tokens', [CREDS.get('aws_web_identity_token')]):
        raise Reject(400, '<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code>'
                          '<Message>Incorrect token audience</Message></Error></ErrorResponse>', 'text/xml')
    c = issue_temporary('STS')
    return ('<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            '<AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>%s</AccessKeyId>'
            '<SecretAccessKey>%s</SecretAccessKey><SessionToken>%s</SessionToken><Expiration>%s</Expiration>'
            '</Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>'
            % (c['AccessKeyId'], c['SecretAccessKey'], c['Token'], c['Expiration']), 'text/xml')


ISSUED_TOKENS = set()
SHA256_DIGEST_INFO = bytes.fromhex('3031300d060960864801650304020105000420')


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + '=' * (-len(s) % 4))


def google_token(h, method, path, params, body):
    strict(method == 'POST', 'token wants POST')
    strict(h.headers.get('Content-Type', '').startswith('application/x-www-form-urlencoded'), 'Content-Type')
    f = {k: v[0] for k, v in urllib.parse.parse_qs(body).items()}
    strict(f.get('grant_type') == 'urn:ietf:params:oauth:grant-type:jwt-bearer', 'grant_type %r' % f.get('grant_type'))
    parts = f.get('assertion', '').split('.')
    strict(len(parts) == 3, 'assertion is not a JWT')
    header, claims = json.loads(b64url_decode(parts[0])), json.loads(b64url_decode(parts[1]))
    strict(header.get('alg') == 'RS256' and header.get('typ') == 'JWT', 'JWT header %r' % header)
    strict(header.get('kid') == CREDS['google_key_id'], 'kid %r' % header.get('kid'))
    # RSASSA-PKCS1-v1_5 with SHA-256, verified with the public key (RFC 8017 8.2.2).
    n = int(CREDS['google_rsa_n'], 16)
    k = (n.bit_length() + 7) // 8
    em = pow(int.from_bytes(b64url_decode(parts[2]), 'big'), 65537, n).to_bytes(k, 'big')
    digest = hashlib.sha256((parts[0] + '.' + parts[1]).encode()).digest()
    want = b'\x00\x01' + b'\xff' * (k - 3 - len(SHA256_DIGEST_INFO) - len(digest)) + b'\x00' + SHA256_DIGEST_INFO + digest
    if em != want:
        raise Reject(400, json.dumps({'error': 'invalid_grant', 'error_description': 'Invalid JWT Signature.'}))
    now = time.time()
    strict(claims.get('iss') == CREDS['google_client_email'], 'iss %r' % claims.get('iss'))
    strict(claims.get('aud') == 'http://%s/token' % h.headers.get('Host'), 'aud %r' % claims.get('aud'))
    strict(claims.get('scope') == 'https://www.googleapis.com/auth/monitoring.read', 'scope %r' % claims.get('scope'))
    strict(abs(claims.get('iat', 0) - now) < 60 and claims.get('exp', 0) - claims.get('iat', 0) == 3600, 'iat/exp')
    token = 'ya29.canaryd-%d' % len(ISSUED_TOKENS)
    ISSUED_TOKENS.add(token)
    return {'access_token': token, 'expires_in': 3599, 'token_type': 'Bearer'}


def stackdriver(h, method, path, params, body):
    strict(method == 'POST', 'stackdriver wants POST')
    m = re.fullmatch(r'/v3/projects/([^/]+)/timeSeries:query', path)
    strict(m is not None, 'stackdriver has no ' + path)
    strict(m.group(1) == CREDS['google_project'], 'project ' + m.group(1))
    auth = h.headers.get('Authorization', '')
    if not auth.startswith('Bearer ') or auth[7:] not in ISSUED_TOKENS:
        raise Reject(401, json.dumps({'error': {'code': 401, 'status': 'UNAUTHENTICATED',
                                                'message': 'Request had invalid authentication credentials.'}}))
    strict(h.headers.get('Content-Type') == 'application/json', 'Content-Type')
    q = json.loads(body)
    strict(sorted(q) == ['query'], 'fields %r' % sorted(q))
    if not q['query']:
        raise Reject(400, json.dumps({'error': {'code': 400, 'status': 'INVALID_ARGUMENT',
                                                'message': 'Field query had an invalid value'}}))
    s = scenario(q['query'])
    throttle_or_sleep(s)
    values = {'good': [0.5, 9.0], 'bad': [5.0, 0.1], 'nan': ['NaN', 0.1]}
    if s not in values:
        return {'timeSeriesDescriptor': {'pointDescriptors': [{'key': 'value.ratio', 'valueType': 'DOUBLE'}]}}
    t = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())
    return {'timeSeriesDescriptor': {'labelDescriptors': [{'key': 'resource.container_name'}],
                                     'pointDescriptors': [{'key': 'value.ratio', 'valueType': 'DOUBLE'}]},
            'timeSeriesData': [{'labelValues': [{'stringValue': 'podinfo'}],
                                'pointData': [{'values': [{'doubleValue': v}],
                                               'timeInterval': {'startTime': t, 'endTime': t}} for v in values[s]]}]}


ROUTES = [('/api/v1/', datadog), ('/v1/accounts/', newrelic), ('/api/v2/metrics', dynatrace),
          ('/api/v2/query', influxdb), ('/token', google_token), ('/v3/projects/', stackdriver)]


class SignalFlow:
    """Splunk Observability (SignalFx): the SignalFlow WebSocket API and the metric API that
    Flagger's IsOnline asks, written from dev.splunk.com/observability/docs/signalflow/messages
    (request and response messages, binary encoding of data messages) with RFC 6455's handshake
    and framing done here by hand:

      GET /v2/metric?limit=1    X-SF-Token       -> 200 {"count", "results"} or 401
      GET /v2/signalflow/connect  Upgrade: websocket (Sec-WebSocket-Key/Version 13 checked)
        client: {"type":"authenticate","token":<sf_token_key>}  -> {"type":"authenticated",...}
                (a wrong token: {"type":"error","error":401,...}, then close 4401)
        client: {"type":"execute","program","channel","start","stop","resolution","maxDelay",
                 "immediate":true,"timezone"}  (exactly these; stop is now; start before it)
        server: control-message STREAM_START, JOB_START; message JOB_RUNNING_RESOLUTION;
                metadata; binary data messages (v1 header; one gzip-compressed); control-message
                END_OF_CHANNEL; then the close handshake.

    Scenarios by the word after "scenario" in the program: good (points 9, then 0.5, then one
    without a value: the last valued point is 0.5), bad (0.1 then the long 5), empty (no data),
    nan (NaN), multiple (two time series), error (an error message for the channel), slow (the
    data after 7 s). Every connection is logged as one line with the client's messages as the
    body (a JSON list)."""

    GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'
    TSID_A = b'\x00\x00\x00\x00\xa6\xc3\x90\x78'
    TSID_B = b'\x00\x00\x00\x00\xa6\xc3\x90\x79'

    def handle(self, h):
        u = urllib.parse.urlsplit(h.path)
        params = urllib.parse.parse_qs(u.query, keep_blank_values=True)
        messages, status, answer = [], 200, ''
        try:
            if u.path == '/v2/metric':
                exact_params(params, ['limit'])
                strict(params['limit'] == ['1'], 'limit %s' % params['limit'])
                if h.headers.get('X-SF-Token') != CREDS['sf_token_key']:
                    raise Reject(401, json.dumps({'code': 401, 'message': 'Unauthorized'}))
                answer = json.dumps({'count': 1, 'results': [{'name': 'demo.errors', 'type': 'GAUGE'}]})
                self.reply(h, 200, answer)
            else:
                strict(u.path == '/v2/signalflow/connect', 'signalflow has no ' + u.path)
                exact_params(params, [])
                status, info = 101, {}
                try:
                    answer = self.converse(h, messages, info)
                except (OSError, EOFError):
                    answer = info.get('scenario', '') + ' (client gone)'
        except Reject as r:
            status, answer = r.status, r.body
            if not messages:
                self.reply(h, r.status, r.body, r.content_type)
            else:  # inside the WebSocket: say it in an error message, then close
                self.safe_send(h, 1, json.dumps({'type': 'error', 'error': 400, 'message': r.body}))
                self.safe_send(h, 8, struct.pack('!H', 1008) + b'strict')
        h.close_connection = True
        line = json.dumps({'api': 'splunk', 'method': 'GET', 'path': u.path, 'params': params,
                           'headers': {k: v for k, v in h.headers.items()}, 'body': json.dumps(messages),
                           'status': status, 'answer': answer[:200]})
        with LOCK, open(LOG, 'a') as f:
            f.write(line + '\n')

    @staticmethod
    def reply(h, status, text, ctype='application/json'):
        data = text.encode()
        h.send_response(status)
        h.send_header('Content-Type', ctype)
        h.send_header('Content-Length', str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    # RFC 6455 §4.2: the opening handshake.
    def upgrade(self, h):
        strict(h.request_version == 'HTTP/1.1', 'WebSocket wants HTTP/1.1')
        strict((h.headers.get('Upgrade') or '').lower() == 'websocket', 'Upgrade: %r' % h.headers.get('Upgrade'))
        strict('upgrade' in [t.strip().lower() for t in (h.headers.get('Connection') or '').split(',')],
               'Connection: %r' % h.headers.get('Connection'))
        strict(h.headers.get('Sec-WebSocket-Version') == '13', 'Sec-WebSocket-Version: %r' %
               h.headers.get('Sec-WebSocket-Version'))
        key = h.headers.get('Sec-WebSocket-Key') or ''
        try:
            strict(len(base64.b64decode(key, validate=True)) == 16, 'Sec-WebSocket-Key is not 16 bytes')
        except ValueError:
            strict(False, 'Sec-WebSocket-Key is not base64: %r' % key)
        strict(h.headers.get('Host') == '127.0.0.1:%d' % PORT, 'Host: %r' % h.headers.get('Host'))
        accept = base64.b64encode(hashlib.sha1((key + self.GUID).encode()).digest()).decode()
        h.send_response(101)
        h.send_header('Upgrade', 'websocket')
        h.send_header('Connection', 'Upgrade')
        h.send_header('Sec-WebSocket-Accept', accept)
        h.end_headers()
        h.wfile.flush()

    # RFC 6455 §5: frames. The client's are masked; ours are not.
    @staticmethod
    def read_message(h):
        op, data = None, b''
        while True:
            b = h.rfile.read(2)
            if len(b) < 2:
                raise EOFError()
            fin, opcode, masked, n = b[0] & 0x80, b[0] & 0x0f, b[1] & 0x80, b[1] & 0x7f
            strict(b[0] & 0x70 == 0, 'reserved bits set without an extension')
            strict(masked, 'a client frame is not masked')
            if n == 126:
                n = struct.unpack('!H', h.rfile.read(2))[0]
            elif n == 127:
                n = struct.unpack('!Q', h.rfile.read(8))[0]
            mask = h.rfile.read(4)
            payload = bytes(c ^ mask[i % 4] for i, c in enumerate(h.rfile.read(n)))
            if opcode == 9:  # ping
                SignalFlow.send(h, 10, payload)
                continue
            if opcode == 10:
                continue
            if opcode == 8:
                return 8, payload
            strict(opcode in (1, 2) if op is None else opcode == 0, 'unexpected opcode %d' % opcode)
            op = opcode if op is None else op
            data += payload
            if fin:
                return op, data

    @staticmethod
    def send(h, opcode, payload):
        if isinstance(payload, str):
            payload = payload.encode()
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([n])
        elif n < 65536:
            head += bytes([126]) + struct.pack('!H', n)
        else:
            head += bytes([127]) + struct.pack('!Q', n)
        h.wfile.write(head + payload)
        h.wfile.flush()

    @staticmethod
    def safe_send(h, opcode, payload):
        try:
            SignalFlow.send(h, opcode, payload)
        except OSError:
            pass

    def next_json(self, h, messages):
        op, data = self.read_message(h)
        strict(op == 1, 'want a text message, got opcode %d' % op)
        m = json.loads(data)
        messages.append(m)
        return m

    def data_message(self, channel, points, compressed=False):
        """Binary encoding, version 1: version, type 5 (data), flags, reserved, the channel
        NUL-padded to 16 bytes; then the timestamp, the count and (type, TSID, value) each."""
        body = struct.pack('!qI', int(time.time() * 1000), len(points))
        for vtype, tsid, v in points:
            raw = struct.pack('!d', v) if vtype == 2 else struct.pack('!q', v) if vtype == 1 else b'\0' * 8
            body += struct.pack('!B', vtype) + tsid + raw
        if compressed:
            body = gzip.compress(body)
        return struct.pack('!BBBB16s', 1, 5, 1 if compressed else 0, 0, channel.encode()) + body

    def converse(self, h, messages, info):
        self.upgrade(h)
        auth = self.next_json(h, messages)
        strict(sorted(auth) == ['token', 'type'] and auth['type'] == 'authenticate',
               'first message is not {"type":"authenticate","token"}: %s' % sorted(auth))
        if auth['token'] != CREDS['sf_token_key']:
            self.send(h, 1, json.dumps({'type': 'error', 'error': 401, 'errorType': 'UNAUTHORIZED',
                                        'message': 'Invalid auth token'}))
            self.send(h, 8, struct.pack('!H', 4401) + b'Unauthorized')
            return 'unauthorized'
        self.send(h, 1, json.dumps({'type': 'authenticated', 'orgId': 'AAAAAAAAAAA', 'userId': 'BBBBBBBBBBB'}))
        ex = self.next_json(h, messages)
        want = ['channel', 'immediate', 'maxDelay', 'program', 'resolution', 'start', 'stop', 'timezone', 'type']
        strict(sorted(ex) == want, 'execute fields %s, want %s' % (sorted(ex), want))
        strict(ex['type'] == 'execute', 'type %r' % ex['type'])
        strict(isinstance(ex['channel'], str) and ex['channel'], 'channel %r' % ex['channel'])
        for k in ('start', 'stop'):
            strict(isinstance(ex[k], int) and not isinstance(ex[k], bool), '%s is not an integer' % k)
        window(ex['start'], ex['stop'], 1000)
        strict(ex['immediate'] is True, 'immediate is not true')
        ch, s = ex['channel'], scenario(ex['program'])
        info['scenario'] = s
        handle = 'DzZ1Y3kAgAA'
        self.send(h, 1, json.dumps({'type': 'control-message', 'channel': ch, 'event': 'STREAM_START',
                                    'timestampMs': int(time.time() * 1000)}))
        self.send(h, 1, json.dumps({'type': 'control-message', 'channel': ch, 'event': 'JOB_START',
                                    'handle': handle, 'timestampMs': int(time.time() * 1000)}))
        self.send(h, 1, json.dumps({'type': 'message', 'channel': ch, 'logicalTimestampMs': ex['start'],
                                    'message': {'messageCode': 'JOB_RUNNING_RESOLUTION', 'messageLevel': 'INFO',
                                                'numInputTimeSeries': 1, 'timestampMs': ex['start'],
                                                'contents': {'resolutionMs': 60000}}}))
        if s == 'error':
            self.send(h, 1, json.dumps({'type': 'error', 'channel': ch, 'error': 400,
                                        'errorType': 'ANALYTICS_PROGRAM_NAME_ERROR',
                                        'message': "Program name 'scenario_error' is not defined"}))
            return 'error'
        for tsid in (self.TSID_A, self.TSID_B) if s == 'multiple' else (self.TSID_A,):
            self.send(h, 1, json.dumps({'type': 'metadata', 'channel': ch,
                                        'tsId': base64.urlsafe_b64encode(tsid).decode().rstrip('='),
                                        'properties': {'sf_metric': 'demo.errors', 'sf_type': 'MetricTimeseries',
                                                       'sf_key': ['sf_metric']}}))
        if s == 'slow':
            time.sleep(7)
        A, B = self.TSID_A, self.TSID_B
        batches = {'good': [[(2, A, 9.0)], [(2, A, 0.5)], [(0, A, 0)]],
                   'bad': [[(2, A, 0.1)], [(1, A, 5)]],
                   'nan': [[(2, A, float('nan'))]],
                   'multiple': [[(2, A, 0.5), (2, B, 0.4)]],
                   'slow': [[(2, A, 0.5)]]}.get(s, [])
        for i, points in enumerate(batches):
            self.send(h, 2, self.data_message(ch, points, compressed=(s == 'good' and i == 1)))
        self.send(h, 1, json.dumps({'type': 'control-message', 'channel': ch, 'event': 'END_OF_CHANNEL',
                                    'handle': handle, 'timestampMs': int(time.time() * 1000)}))
        # The client closes (RFC 6455 §5.5.1): echo its close.
        op, data = self.read_message(h)
        strict(op == 8, 'want the close handshake, got opcode %d' % op)
        self.send(h, 8, data[:2])
        return s


SIGNALFLOW = SignalFlow()
# --- AWS credential sources: the container credentials endpoint and IMDSv2 (extmetrics) --------
# container_credentials  GET /v1/credentials (EKS Pod Identity's path; ECS's relative URIs get
#     the same answer), Authorization: one of CREDS['aws_container_tokens'], else 401
#     {"code", "message"}; answers {"AccessKeyId", "SecretAccessKey", "Token", "Expiration"}.
# imds  PUT /latest/api/token with X-aws-ec2-metadata-token-ttl-seconds (1..21600): a session
#     token; then GET /latest/meta-data/iam/security-credentials/ (CREDS['aws_imds_role']) and
#     .../<role> (the keys, with "Code": "Success") with X-aws-ec2-metadata-token: IMDSv2 only,
#     a GET without a valid token is 401.
# Each answers its first request 503 (the SDKs retry a 5xx) and hands out new temporary keys,
# which cloudwatch accepts with their session token, that expire CREDS['aws_expires_in'] seconds
# (default 3600) after they are issued.
FIRST_SEEN = set()
IMDS_TOKENS = {}


def fail_first(kind):
    with LOCK:
        if kind in FIRST_SEEN:
            return
        FIRST_SEEN.add(kind)
    raise Reject(503, json.dumps({'code': 'ServiceUnavailable', 'message': 'try again'}))


def issue_temporary(prefix):
    with LOCK:
        n = len(TEMPORARY)
        key_id = 'ASIA%s%09d' % (prefix, n)
        secret, token = 'temporary-secret-%s-%d' % (prefix, n), 'session-token-%s-%d' % (prefix, n)
        TEMPORARY[key_id] = (secret, token)
    expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=CREDS.get('aws_expires_in', 3600))
    return {'AccessKeyId': key_id, 'SecretAccessKey': secret, 'Token': token,
            'Expiration': expires.strftime('%Y-%m-%dT%H:%M:%SZ')}


def container_credentials(h, method, path, params, body):
    strict(method == 'GET' and path == '/v1/credentials', 'container credentials want GET /v1/credentials')
    strict(not params and not body, 'container credentials take no parameters or body')
    if h.headers.get('Authorization') not in CREDS.get('aws_container_tokens', []):
        raise Reject(401, json.dumps({'code': 'AccessDeniedException', 'message': 'invalid authorization token'}))
    fail_first('container')
    return issue_temporary('CTR')


def imds(h, method, path, params, body):
    strict(not params, 'IMDS takes no parameters')
    if path == '/latest/api/token':
        strict(method == 'PUT', 'the IMDSv2 token wants PUT')
        ttl = integer(h.headers.get('X-aws-ec2-metadata-token-ttl-seconds'), 'X-aws-ec2-metadata-token-ttl-seconds')
        strict(1 <= ttl <= 21600, 'token TTL %d' % ttl)
        fail_first('imds-token')
        with LOCK:
            tok = 'imds-session-%d' % len(IMDS_TOKENS)
            IMDS_TOKENS[tok] = time.time() + ttl
        return (tok, 'text/plain')
    strict(method == 'GET', 'IMDS metadata wants GET')
    tok = h.headers.get('X-aws-ec2-metadata-token')
    if tok not in IMDS_TOKENS or IMDS_TOKENS[tok] < time.time():
        raise Reject(401, '', 'text/plain')
    role = CREDS['aws_imds_role']
    if path == '/latest/meta-data/iam/security-credentials/':
        return (role, 'text/plain')
    strict(path == '/latest/meta-data/iam/security-credentials/' + role, 'no metadata at ' + path)
    c = issue_temporary('IMD')
    c.update({'Code': 'Success', 'Type': 'AWS-HMAC',
              'LastUpdated': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')})
    return c


ROUTES += [('/v1/credentials', container_credentials), ('/latest/', imds)]


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def handle_any(self, method):
        u = urllib.parse.urlsplit(self.path)
        params = urllib.parse.parse_qs(u.query, keep_blank_values=True)
        body = self.rfile.read(int(self.headers.get('Content-Length', 0) or 0)).decode()
        api = ''
        try:
            handler = None
            if u.path == '/' and self.headers.get('X-Amz-Target'):
                api, handler = 'cloudwatch', cloudwatch
            elif u.path == '/' and 'AssumeRoleWithWebIdentity' in body:
                api, handler = 'sts', sts
            for prefix, fn in ROUTES if handler is None else []:
                if u.path.startswith(prefix):
                    api, handler = fn.__name__, fn
                    break
            strict(handler is not None, 'no API at ' + u.path)
            answer = handler(self, method, u.path, params, body)
            if isinstance(answer, tuple):
                status, text, ctype = 200, answer[0], answer[1]
            else:
                status, text, ctype = 200, json.dumps(answer), 'application/json'
        except Reject as r:
            status, text, ctype = r.status, r.body, r.content_type
        line = json.dumps({'api': api, 'method': method, 'path': u.path, 'params': params,
                           'headers': {k: v for k, v in self.headers.items()}, 'body': body,
                           'status': status, 'answer': text[:200]})
        with LOCK, open(LOG, 'a') as f:
            f.write(line + '\n')
        data = text.encode()
        try:
            self.send_response(status)
            self.send_header('Content-Type', ctype)
            self.send_header('Content-Length', str(len(data)))
            if status == 429:
                self.send_header('Retry-After', '1')
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_GET(self):
        if self.path.startswith('/v2/'):
            return SIGNALFLOW.handle(self)
        self.handle_any('GET')

    def do_POST(self):
        self.handle_any('POST')

    def do_PUT(self):
        self.handle_any('PUT')

    def log_message(self, *a):
        pass


print('listening', flush=True)
http.server.ThreadingHTTPServer(('127.0.0.1', PORT), H).serve_forever()
