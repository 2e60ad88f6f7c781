"""Snakebin: a pastebin for Python scripts that runs them (ZeroVM docs §3.4).

This is the REST endpoint of the container snakebin-api: every request on
/api/<account>/snakebin-api[/...] runs it (zapp.yaml), with the request
body on /dev/stdin, the container snakebin-store as a SQLite listing on
/dev/input, and the request in the CGI environment (REQUEST_METHOD,
PATH_INFO=/<account>/snakebin-api/..., QUERY_STRING, HTTP_HOST, HTTP_ACCEPT).
It answers with a whole HTTP response on stdout (message/http); to read or
write a stored script it answers with a job instead (X-Zerovm-Execute and a
JSON job), which ZeroCloud runs next (a chained job) as the answer.

    GET  /snakebin-api                  the page (index.html)
    POST /snakebin-api                  save the body: 201 (or 200) and its URL
    GET  /snakebin-api/<name>           the script (text/plain), or the page
                                        with the script in it (Accept: text/html)
    GET  /snakebin-api/<name>/execute   run the script: its output
    POST /snakebin-api/execute          run the body: its output
    GET  /snakebin-api/search?q=<term>  JSON list of the URLs of the scripts
                                        containing <term> (a MapReduce job)

Python 3 port of the tutorial's Python 2 code; what differs and why:
examples/snakebin/README.md.
"""

import base64
import hashlib
import io
import json
import os
import random
import re
import sqlite3
import string
import sys
import traceback
import types
import urllib.parse

# For simplicity, some Swift object/container names are hard-coded (as in
# the tutorial). `~` is the account the job runs in: the app owner's.
API_CONTAINER = 'snakebin-api'
STORE = 'swift://~/snakebin-store'
APP_IMAGE = 'swift://~/snakebin-app/snakebin.zapp'
PYTHON = 'file://python3:python'

# The largest script Snakebin takes, in bytes. A POSTed script is handed on
# to the job that saves or runs it in that job's environment (base64), and a
# program's environment is part of its NVRAM, which holds 10240 bytes in all
# (ZeroVM's limit; what does not fit is cut off).
MAX_SCRIPT = 6000
# The longest search term, in characters (it is handed on the same way).
MAX_TERM = 200

# Names of stored scripts: what random_short_name makes.
NAME_RE = re.compile(r'^[A-Za-z0-9]{1,64}$')


def http_resp(code, reason, content_type='text/plain; charset=utf-8', msg='',
              extra_headers=None):
    """Writes a whole HTTP response to stdout (a message/http device).

    `msg` is str (sent as UTF-8) or bytes; Content-Length is its length in
    bytes.
    """
    body = msg.encode('utf-8') if isinstance(msg, str) else msg
    headers = [('Content-Type', content_type), ('Content-Length', len(body))]
    if extra_headers:
        headers = list(extra_headers.items()) + headers
    head = 'HTTP/1.1 %s %s\r\n' % (code, reason)
    head += ''.join('%s: %s\r\n' % (k, v) for k, v in headers) + '\r\n'
    out = sys.__stdout__.buffer
    out.write(head.encode('utf-8') + body)
    out.flush()


class Job(object):
    """A node of a ZeroCloud job, with the devices every Snakebin job has."""

    def __init__(self, name, args, stdout_type='message/http'):
        self.name = name
        self.args = args
        self.devices = [
            {'name': 'python3'},
            {'name': 'image', 'path': APP_IMAGE},
        ]
        if stdout_type is not None:
            self.devices.append({'name': 'stdout', 'content_type': stdout_type})
        self.env = {}
        self.connect = []

    def add_device(self, name, content_type=None, path=None):
        dev = {'name': name}
        if content_type is not None:
            dev['content_type'] = content_type
        if path is not None:
            dev['path'] = path
        self.devices.append(dev)

    def set_envvar(self, key, value):
        self.env[key] = value

    def to_json(self):
        return json.dumps([self.to_dict()])

    def to_dict(self):
        node = {
            'name': self.name,
            'exec': {
                'path': PYTHON,
                'args': self.args,
                'env': self.env,
            },
            'devices': self.devices,
        }
        if self.connect:
            node['connect'] = self.connect
        return node


def chain(job_json):
    """Answers with a job: ZeroCloud runs it and its answer is ours."""
    http_resp(200, 'OK', content_type='application/json', msg=job_json,
              extra_headers={'X-Zerovm-Execute': '1.0'})


def pass_on(job, data):
    """Hands the script `data` on to `job`, in its environment."""
    job.set_envvar('SNAKEBIN_POST_CONTENTS',
                   base64.b64encode(data).decode('ascii'))
    job.set_envvar('SNAKEBIN_POST_SHA1', hashlib.sha1(data).hexdigest())


def passed_on():
    """The script handed on by pass_on, or None if it did not arrive whole."""
    raw = os.environ.get('SNAKEBIN_POST_CONTENTS')
    if raw is None:
        return None
    try:
        data = base64.b64decode(raw, validate=True)
    except ValueError:
        return None
    if hashlib.sha1(data).hexdigest() != os.environ.get('SNAKEBIN_POST_SHA1'):
        return None
    return data


def too_large():
    http_resp(413, 'Request Entity Too Large',
              msg='Snakebin takes scripts of up to %d bytes\n' % MAX_SCRIPT)


def _store_names(where=None, args=()):
    """Names in the local container listing (snakebin-store, mapped to
    /dev/input as a SQLite database with Swift's `object` table)."""
    conn = sqlite3.connect('/dev/input')
    try:
        sql = 'SELECT name FROM object WHERE deleted=0'
        if where:
            sql += ' AND ' + where
        return [row[0] for row in conn.execute(sql, args)]
    finally:
        conn.close()


def _object_exists(name):
    """Whether snakebin-store holds an object called `name`."""
    return len(_store_names('name=?', (name,))) > 0


def random_short_name(seed, length=10):
    """A name of `length` letters and digits, the same for the same seed."""
    rand = random.Random()
    rand.seed(seed)
    return ''.join(rand.sample(string.ascii_lowercase
                               + string.ascii_uppercase
                               + string.digits, length))


def host():
    """The host the client asked for (for the URLs we hand out)."""
    h = os.environ.get('HTTP_HOST')
    if h:
        return h
    return '%s:%s' % (os.environ.get('SERVER_NAME', 'localhost'),
                      os.environ.get('SERVER_PORT', '80'))


def doc_url(account, short_name):
    """The public URL of a stored script."""
    return urllib.parse.urlunparse((
        'http', host(),
        '/api/%s/%s/%s' % (account, API_CONTAINER, short_name),
        '', '', ''))


def request_parts():
    """(account, container, [path segments after the container])."""
    parts = os.environ.get('PATH_INFO', '').strip('/').split('/')
    parts += [''] * (2 - len(parts))
    return parts[0], parts[1], [p for p in parts[2:] if p]


def execute_code(code):
    """Runs `code` as a __main__ module; returns what it printed (stdout
    and stderr, a traceback included) as str."""
    if isinstance(code, bytes):
        code = code.decode('utf-8', errors='replace')
    buf = io.BytesIO()
    captured = io.TextIOWrapper(buf, encoding='utf-8', errors='replace',
                                write_through=True)
    old_stdout, old_stderr = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = captured
    module = types.ModuleType('__main__')
    try:
        exec(compile(code, '<snakebin>', 'exec'), module.__dict__)
    except SystemExit as e:
        if e.code not in (None, 0):
            print(e.code if isinstance(e.code, str) else
                  'exit status %s' % e.code, file=captured)
    except BaseException as e:
        # The traceback from the script's own frames on.
        tb = e.__traceback__.tb_next if e.__traceback__ else None
        traceback.print_exception(type(e), e, tb, file=captured)
    finally:
        sys.stdout, sys.stderr = old_stdout, old_stderr
        captured.flush()
    return buf.getvalue().decode('utf-8', errors='replace')


def post():
    file_data = sys.stdin.buffer.read()
    account, _container, rest = request_parts()
    if len(file_data) > MAX_SCRIPT:
        return too_large()
    if rest == ['execute']:
        # Posting a script, to execute. It runs in a job of its own whose
        # output is plain text, not here: code run where the answer is
        # message/http could answer with a job, run as this app.
        job = Job('snakebin-execute', 'get_file.py',
                  stdout_type='text/plain; charset=utf-8')
        pass_on(job, file_data)
        job.set_envvar('SNAKEBIN_EXECUTE', 'True')
        return chain(job.to_json())
    # Posting a script, to save (on any other path, as the tutorial's page
    # posts to its own URL).
    short_name = random_short_name(hashlib.sha1(file_data).hexdigest())
    if _object_exists(short_name):
        # Already saved: the name comes from the contents, so this is it.
        return http_resp(200, 'OK', msg=doc_url(account, short_name) + '\n')
    job = Job('snakebin-save-file', 'save_file.py')
    pass_on(job, file_data)
    job.set_envvar('SNAKEBIN_PUBLIC_FILE_PATH',
                   'swift://~/%s/%s' % (API_CONTAINER, short_name))
    job.add_device('output', path='%s/%s' % (STORE, short_name),
                   content_type='text/plain; charset=utf-8')
    chain(job.to_json())


def search(query_string):
    params = urllib.parse.parse_qs(query_string or '')
    term = params.get('q', [''])[0]
    if not term or len(term) > MAX_TERM:
        return http_resp(400, 'Bad Request', msg='Search needs ?q=<term> '
                         '(%d characters at most)\n' % MAX_TERM)
    if not _store_names():
        # No scripts: no mapper to run.
        return http_resp(200, 'OK', content_type='application/json', msg='[]')
    # One mapper per stored script (the wildcard), each next to its script,
    # all sending their hits to one reducer, which answers.
    mapper = Job('search-mapper', 'search_mapper.py', stdout_type=None)
    mapper.add_device('input', path=STORE + '/*')
    mapper.set_envvar('SNAKEBIN_SEARCH', term)
    mapper.connect = ['search-reducer']
    reducer = Job('search-reducer', 'search_reducer.py')
    chain(json.dumps([mapper.to_dict(), reducer.to_dict()]))


def get():
    account, _container, rest = request_parts()
    if rest == ['search']:
        return search(os.environ.get('QUERY_STRING', ''))
    execute = False
    if len(rest) == 2 and rest[1] == 'execute':
        execute = True
        rest = rest[:1]
    if not rest:
        # The page, with an empty editor.
        with open('/index.html', encoding='utf-8') as fp:
            page = fp.read()
        return http_resp(200, 'OK', content_type='text/html; charset=utf-8',
                         msg=page.replace('{code}', ''))
    name = rest[0]
    if len(rest) != 1 or not NAME_RE.match(name) or not _object_exists(name):
        return http_resp(404, 'Not Found', msg='Not Found\n')
    # A stored script: a job next to it reads it (or runs it) and answers.
    if execute:
        job = Job('snakebin-execute', 'get_file.py',
                  stdout_type='text/plain; charset=utf-8')
        job.set_envvar('SNAKEBIN_EXECUTE', 'True')
    else:
        job = Job('snakebin-get-file', 'get_file.py')
        job.set_envvar('HTTP_ACCEPT', os.environ.get('HTTP_ACCEPT', ''))
    job.add_device('input', path='%s/%s' % (STORE, name))
    chain(job.to_json())


if __name__ == '__main__':
    request_method = os.environ.get('REQUEST_METHOD')
    if request_parts()[1] != API_CONTAINER:
        # The app is also the endpoint of snakebin-app and snakebin-store
        # (the setuid rule wants it there): nothing to see through those.
        http_resp(404, 'Not Found', msg='Not Found\n')
    elif request_method == 'POST':
        post()
    elif request_method == 'GET':
        get()
    else:
        http_resp(405, 'Method Not Allowed', msg='Method Not Allowed\n',
                  extra_headers={'Allow': 'GET, POST'})
