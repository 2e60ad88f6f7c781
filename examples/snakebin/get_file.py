"""Reads a stored script (/dev/input) and answers with it, or runs it.

A job of its own, chained by snakebin.py:
  - to show a script: stdout is message/http; a browser (Accept: text/html)
    gets the page with the script in the editor, any other client the
    script as text/plain;
  - to run one (SNAKEBIN_EXECUTE): stdout is text/plain and is the output.
    The script is the stored one, or the POSTed one passed on in
    SNAKEBIN_POST_CONTENTS (base64) for POST /snakebin-api/execute.
"""

import os
import sys
from xml.sax.saxutils import escape

import snakebin


def main():
    if 'SNAKEBIN_POST_CONTENTS' in os.environ:
        contents = snakebin.passed_on()
        if contents is None:
            # Cut off on the way (see snakebin.MAX_SCRIPT): say so, fail.
            print('Snakebin takes scripts of up to %d bytes' % snakebin.MAX_SCRIPT)
            sys.exit(1)
    else:
        with open('/dev/input', 'rb') as fp:
            contents = fp.read()
    text = contents.decode('utf-8', errors='replace')
    if os.environ.get('SNAKEBIN_EXECUTE') is not None:
        # Plain text, whatever the client accepts: the output of untrusted
        # code is never served as HTML.
        out = sys.__stdout__.buffer
        out.write(snakebin.execute_code(text).encode('utf-8'))
        out.flush()
    elif 'text/html' in os.environ.get('HTTP_ACCEPT', ''):
        # Something that looks like a browser is requesting the document:
        with open('/index.html', encoding='utf-8') as fp:
            html_page_template = fp.read()
        html_page = html_page_template.replace('{code}', escape(text))
        snakebin.http_resp(200, 'OK', content_type='text/html; charset=utf-8',
                           msg=html_page)
    else:
        # Some other type of client is requesting the document:
        snakebin.http_resp(200, 'OK', content_type='text/plain; charset=utf-8',
                           msg=contents)


if __name__ == '__main__':
    main()
