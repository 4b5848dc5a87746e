#!/usr/bin/python3
"""Writes the seed corpora tests/fuzz/corpus/<harness>/ from tests/golden and
tests/data (small, valid and invalid inputs of every kind). Re-run after the
goldens change; libFuzzer grows its own working corpus from these in
build-fuzz/corpus/ (never committed)."""
import hashlib, json, os, struct

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
out = os.path.join(root, 'tests', 'fuzz', 'corpus')

def load(p):
    with open(os.path.join(root, p)) as f:
        return json.load(f)

def put(h, data):
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(out, h)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()[:16]), 'wb') as f:
        f.write(data)

def dump(o):
    return json.dumps(o, separators=(',', ':'))

nb201 = load('tests/golden/nb201.json')['cases'][::20]
nb101 = load('tests/golden/nb101.json')['cases'][::6]
graph = load('tests/golden/graph.json')['cases'][::5]
nlp = load('tests/golden/nlp.json')['cases'][::3]
g_bad = load('tests/data/gspace/invalid.json')['cases'][::6]
b_bad = load('tests/data/nb101/invalid.json')['cases'][::4]
n_bad = load('tests/data/nlp/invalid.json')['cases'][::5]

# nb201: arch strings
for c in nb201:
    put('nb201', c['arch'])
with open(os.path.join(root, 'tests/data/nb201/bad_archs.txt')) as f:
    for i, line in enumerate(f):
        if not line.startswith('#') and '\t' in line and i % 3 == 0:
            a = line.split('\t')[0]
            put('nb201', '' if a == 'EMPTY' else a.encode().decode('unicode_escape'))

# nb101: {"matrix", "ops"}
for c in nb101:
    put('nb101', dump({'matrix': c['matrix'], 'ops': c['ops']}))
for c in load('tests/data/nb101/prune.json')['cases']:
    put('nb101', dump({'matrix': c['matrix'], 'ops': c['ops']}))
for c in b_bad:
    put('nb101', dump(c['request']))

# graph: whole requests
for c in graph:
    put('graph', dump(c['request']))
for c in g_bad:
    put('graph', dump(c['request']))

# nlp: recipes (objects and the string form)
for c in nlp:
    put('nlp', dump(c['recipe']))
put('nlp', dump(dump(nlp[0]['recipe'])))
for c in n_bad:
    if 'recipe' in c['request']:
        put('nlp', dump(c['request']['recipe']))

# request: full score requests of every space, with the optional fields
for c in nb201[:4]:
    put('request', dump({'space': 'nb201', 'arch': c['arch'], 'weights': c['weights'], 'engine': 'dense'}))
for c in nb101[:3]:
    put('request', dump({'space': 'nb101', 'matrix': c['matrix'], 'ops': c['ops'], 'id': 'x'}))
for c in graph[:3]:
    put('request', dump(c['request']))
for c in nlp[:3]:
    put('request', dump({'space': 'nlp', 'recipe': c['recipe'], 'vocab_size': c['vocab_size']}))
put('request', '{"space":"nope"}')

# table: CSV files of tests/data/eval
d = os.path.join(root, 'tests/data/eval')
for n in sorted(os.listdir(d)):
    if n.endswith('.csv'):
        with open(os.path.join(d, n), 'rb') as f:
            put('table', f.read()[:4096])

# loader: byte 0 = loader (0 npy, 1 cifar10, 2 tokens-file), byte 1 = batch size - 2
def npy(descr, shape, payload):
    hdr = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, repr(tuple(shape)))
    hdr = hdr.encode()
    pad = 64 - (10 + len(hdr) + 1) % 64
    hdr += b' ' * pad + b'\n'
    return b'\x93NUMPY\x01\x00' + struct.pack('<H', len(hdr)) + hdr + payload

put('loader', bytes([0, 0]) + npy('<f4', (2, 3, 32, 32), struct.pack('<f', 0.5) * (2 * 3 * 32 * 32)))
put('loader', bytes([0, 0]) + npy('|u1', (2, 32, 32, 3), bytes(range(256)) * 24))
put('loader', bytes([0, 0]) + npy('<f4', (2, 3, 32, 32), b'\0' * 16))           # short data
put('loader', bytes([1, 0]) + (b'\x03' + bytes(range(256)) * 12) * 2)              # two CIFAR records
put('loader', bytes([1, 0]) + b'\x03' * 100)                                       # a short record
with open(os.path.join(root, 'tests/data/nlp/corpus.txt'), 'rb') as f:
    text = f.read()
put('loader', bytes([2, 0]) + text[:3000])
put('loader', bytes([2, 0]) + b'a b c\n' * 200)

# http: raw requests
def req(method, path, body=b'', extra=b''):
    if isinstance(body, str):
        body = body.encode()
    h = b'%s %s HTTP/1.1\r\nHost: fuzz\r\n' % (method.encode(), path.encode()) + extra
    if method == 'POST':
        h += b'Content-Type: application/json\r\nContent-Length: %d\r\n' % len(body)
    return h + b'\r\n' + body

put('http', req('GET', '/livez'))
put('http', req('GET', '/v1/spaces'))
put('http', req('GET', '/v1/batches'))
put('http', req('GET', '/metrics'))
put('http', req('GET', '/v1/scores/0123456789abcdef0123456789abcdef'))
put('http', req('POST', '/v1/score', dump({'space': 'nb201', 'arch': nb201[1]['arch']})))
put('http', req('POST', '/v1/score', dump({'space': 'nb201', 'arch': nb201[2]['arch'], 'batch_size': 4})))
put('http', req('POST', '/v1/score/batch', dump({'requests': [{'space': 'nb201', 'arch': nb201[3]['arch']},
                                                             {'space': 'nope'}]})))
put('http', req('POST', '/v1/score', dump({'space': 'nlp', 'recipe': nlp[0]['recipe']})))
put('http', req('POST', '/v1/score', '{"space":'))
put('http', req('OPTIONS', '/v1/score', extra=b'Origin: http://x\r\nAccess-Control-Request-Method: POST\r\n'))
put('http', b'POST /v1/score HTTP/1.1\r\nHost: fuzz\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"spa\r\n0\r\n\r\n')
put('http', req('GET', '/livez') + req('GET', '/readyz'))                          # pipelined
