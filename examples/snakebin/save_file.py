"""Stores a POSTed script and answers with its URL.

A job of its own, chained by snakebin.py: the script comes in
SNAKEBIN_POST_CONTENTS (base64, checked against SNAKEBIN_POST_SHA1), /dev/output is the new object in
snakebin-store (written where it will be stored), and SNAKEBIN_PUBLIC_FILE_PATH
(swift://~/snakebin-api/<name>) says the name to hand out. PATH_INFO is
/<account> (a chained job is a job POSTed to the account).
"""

import os
import sys

import snakebin


def save_file(public_file_path):
    script_contents = snakebin.passed_on()
    if script_contents is None:
        # Cut off on the way: store nothing (a non-zero exit), say why.
        snakebin.too_large()
        sys.exit(1)
    with open('/dev/output', 'wb') as fp:
        fp.write(script_contents)
    _rest, _container, short_name = public_file_path.rsplit('/', 2)
    account = os.environ.get('PATH_INFO', '').strip('/')
    file_url = snakebin.doc_url(account, short_name) + '\n'
    snakebin.http_resp(201, 'Created', msg=file_url,
                       extra_headers={'Location': file_url.strip()})


if __name__ == '__main__':
    save_file(os.environ.get('SNAKEBIN_PUBLIC_FILE_PATH', ''))
