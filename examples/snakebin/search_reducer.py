"""The reduce step of a search: reads every mapper's hits (/dev/in/<mapper>)
and answers with them as a JSON list of URLs."""

import json
import os

import snakebin

inp_dir = '/dev/in'
results = []
for inp_file in sorted(os.listdir(inp_dir)):
    with open(os.path.join(inp_dir, inp_file)) as fp:
        results.extend(line.strip() for line in fp if line.strip())

snakebin.http_resp(200, 'OK', content_type='application/json',
                   msg=json.dumps(sorted(results)))
