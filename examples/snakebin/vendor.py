#!/usr/bin/env python3
"""Vendors Snakebin's front-end libraries and builds its page.

1. Fetches jQuery 2.1.1 and CodeMirror 4.6.0 (the versions the tutorial
   loaded from a CDN) from the npm registry, checks each tarball against the
   npm `dist.integrity` (sha512) pinned below, and keeps only the files the
   page uses in vendor/<package>/<path>, each checked against its pinned
   sha256. Files already there and matching their pins are not fetched again.
2. Writes index.html from index.html.in, each `<!-- vendor:<package>/<path> -->`
   line replaced by that file inlined (<style> or <script>), so that the page
   the app serves needs no other request and no internet.

Python 3 standard library only. Usage: python3 vendor.py [--out DIR] (from
any directory; index.html goes to DIR, default this directory).
$SNAKEBIN_NPM_REGISTRY replaces https://registry.npmjs.org (a
mirror); what it serves is checked against the same pins.
"""

import argparse
import base64
import hashlib
import io
import os
import re
import sys
import tarfile
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
VENDOR = os.path.join(HERE, 'vendor')
REGISTRY = os.environ.get('SNAKEBIN_NPM_REGISTRY', 'https://registry.npmjs.org').rstrip('/')

# package -> (version, npm dist.integrity of its tarball, {path: sha256}).
PINS = {
    'jquery': (
        '2.1.1',
        'sha512-y+iOyLV9My82vtN1cc96DLlklSv15h5Jjug52TK+vXmgtN/dE89WvmP1W/g7lL+RWFzdsTmBwJgX/yf4RY9mPA==',
        {
            'dist/jquery.min.js':
                'c0d4098bc8b34c6f87a3d7723988ae81214a53a0bb4a1d4d36a67640f98ed079',
        },
    ),
    'codemirror': (
        '4.6.0',
        'sha512-3KH16EhsL4mge0/OdmUeEeCkFhDwXKRINUstFGjfApbfz8D9NwJ9dOEb7BlzTMEKrCV2Jj6mfefHaMXv3vNL5Q==',
        {
            'lib/codemirror.js':
                'e8e6da20c47d499b33469165cdea606091147f371b8742668f39a2529f5e25fb',
            'lib/codemirror.css':
                '3d1c91cfd18244f0324ae2fce1ced9777100419538a088f1fa68223fba12e689',
            'mode/python/python.js':
                'b1e0840d00e8909781fa6a5ed769321a4a4a0fb0e4df4af940a19262a396f05e',
        },
    ),
}


def write(dest, data):
    """Writes `dest` whole or not at all (two runs at once may race)."""
    tmp = '%s.%d.tmp' % (dest, os.getpid())
    with open(tmp, 'wb') as fp:
        fp.write(data)
    os.replace(tmp, dest)


def fail(msg):
    sys.stderr.write('vendor.py: error: %s\n' % msg)
    sys.exit(1)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def local(package, path):
    return os.path.join(VENDOR, package, *path.split('/'))


def present(package):
    """Whether every file of `package` is in vendor/ with its pinned digest."""
    _version, _integrity, files = PINS[package]
    for path, digest in files.items():
        try:
            with open(local(package, path), 'rb') as fp:
                if sha256(fp.read()) != digest:
                    return False
        except OSError:
            return False
    return True


def fetch(package):
    """Downloads `package`'s tarball, checks it, writes its pinned files."""
    version, integrity, files = PINS[package]
    url = '%s/%s/-/%s-%s.tgz' % (REGISTRY, package, package, version)
    print('vendor.py: fetching %s' % url)
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:
            tgz = resp.read()
    except OSError as e:
        fail('cannot download %s: %s (no network? put the files in %s by hand, '
             'or set SNAKEBIN_NPM_REGISTRY to a mirror)' % (url, e, VENDOR))
    algo, _, want = integrity.partition('-')
    got = base64.b64encode(hashlib.new(algo, tgz).digest()).decode('ascii')
    if got != want:
        fail('%s: %s is %s-%s, pinned %s' % (url, algo, algo, got, integrity))
    with tarfile.open(fileobj=io.BytesIO(tgz), mode='r:gz') as tar:
        for path, digest in files.items():
            try:
                member = tar.extractfile('package/' + path)
            except KeyError:
                member = None
            if member is None:
                fail('%s has no file package/%s' % (url, path))
            data = member.read()
            if sha256(data) != digest:
                fail('%s: package/%s has sha256 %s, pinned %s'
                     % (url, path, sha256(data), digest))
            dest = local(package, path)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            write(dest, data)


def inline(package, path):
    """The HTML that inlines a vendored file."""
    if package not in PINS or path not in PINS[package][2]:
        fail('index.html.in names %s/%s, which is not pinned here' % (package, path))
    with open(local(package, path), encoding='utf-8') as fp:
        text = fp.read()
    # No source map to fetch (only devtools would, but nothing may be fetched).
    text = re.sub(r'^\s*//# sourceMappingURL=.*$', '', text, flags=re.M)
    if path.endswith('.css'):
        if re.search(r'</style', text, re.I):
            fail('%s/%s contains </style' % (package, path))
        return '<style>/* %s@%s %s */\n%s\n</style>' % (
            package, PINS[package][0], path, text)
    if re.search(r'</script|<!--', text, re.I):
        fail('%s/%s contains </script or <!--: it cannot be inlined as is'
             % (package, path))
    return '<script>/* %s@%s %s */\n%s\n</script>' % (
        package, PINS[package][0], path, text)


def build_page(out_dir):
    with open(os.path.join(HERE, 'index.html.in'), encoding='utf-8') as fp:
        template = fp.read()
    page = re.sub(r'<!-- vendor:([a-z0-9.-]+)/(\S+) -->',
                  lambda m: inline(m.group(1), m.group(2)), template)
    # get_file.py puts the script where {code} is: once, in the editor.
    if page.count('{code}') != 1:
        fail('index.html would hold {code} %d times, not once' % page.count('{code}'))
    # Nothing loaded from elsewhere.
    remote = re.search(r'''(?:src|href)\s*=\s*["']?(?:[a-z]+:)?//''', page, re.I)
    if remote:
        fail('index.html would load something from another site: %s' % remote.group(0))
    dest = os.path.join(out_dir, 'index.html')
    write(dest, page.encode('utf-8'))
    print('vendor.py: wrote %s (%d bytes)' % (dest, len(page.encode('utf-8'))))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default=HERE,
                        help='where to write index.html (default: %(default)s)')
    args = parser.parse_args()
    for package in sorted(PINS):
        if present(package):
            print('vendor.py: %s@%s present and verified' % (package, PINS[package][0]))
        else:
            fetch(package)
    build_page(args.out)


if __name__ == '__main__':
    main()
