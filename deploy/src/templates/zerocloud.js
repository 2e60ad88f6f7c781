// zerocloud.js: runs the zapp this page was deployed with.
// Run: log in with the options zpm deploy rendered into the page, read
// boot/system.map next to the page, add the typed arguments to every
// group's command line, POST the job and show what it printed.
"use strict";

var ZeroCloudApp = (function () {
  // The escaping zpm applies to each argument word: these characters
  // would split or end the word in ZeroVM's NVRAM.
  function escapeArg(word) {
    return String(word).replace(/[\\",\n ]/g, function (c) {
      return "\\x" + c.charCodeAt(0).toString(16).padStart(2, "0");
    });
  }

  // The words for the form's inputs: an option starting with "-" is
  // followed by its value; any other input gives its value alone. Empty
  // inputs are left out.
  function wordsOf(inputs) {
    var words = [];
    inputs.forEach(function (input) {
      var value = input.value;
      if (value === "") {
        return;
      }
      var option = input.option || "";
      if (option.charAt(0) === "-") {
        words.push(option);
      }
      words.push(value);
    });
    return words;
  }

  // Appends the escaped words to every group's exec.args.
  function appendArgs(job, words) {
    if (words.length === 0) {
      return job;
    }
    var extra = words.map(escapeArg).join(" ");
    job.forEach(function (group) {
      group.exec = group.exec || {};
      var args = group.exec.args || "";
      group.exec.args = args === "" ? extra : args + " " + extra;
    });
    return job;
  }

  function failure(what, resp) {
    return resp.text().then(function (body) {
      throw new Error(what + ": " + resp.status + " " + resp.statusText +
        (body ? ": " + body.trim() : ""));
    });
  }

  // Resolves to {storageUrl, token} (token null for version 0.0).
  function login(opts) {
    if (opts.version === "0.0") {
      return Promise.resolve({ storageUrl: opts.swiftUrl, token: null });
    }
    if (opts.version === "1.0") {
      return fetch(opts.authUrl, {
        headers: { "X-Auth-User": opts.username, "X-Auth-Key": opts.password }
      }).then(function (resp) {
        if (!resp.ok) {
          return failure("login", resp);
        }
        return {
          storageUrl: resp.headers.get("X-Storage-Url"),
          token: resp.headers.get("X-Auth-Token")
        };
      });
    }
    if (opts.version === "2.0") {
      return fetch(opts.authUrl.replace(/\/+$/, "") + "/tokens", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({
          auth: {
            tenantName: opts.tenant,
            passwordCredentials: { username: opts.username, password: opts.password }
          }
        })
      }).then(function (resp) {
        if (!resp.ok) {
          return failure("login", resp);
        }
        return resp.json().then(function (answer) {
          var access = answer.access || {};
          var url = null;
          (access.serviceCatalog || []).forEach(function (service) {
            if (url === null && service.type === "object-store") {
              (service.endpoints || []).forEach(function (e) {
                if (url === null && e.publicURL) {
                  url = e.publicURL;
                }
              });
            }
          });
          if (url === null || !access.token) {
            throw new Error("login: no object-store endpoint in the catalog");
          }
          return { storageUrl: url, token: access.token.id };
        });
      });
    }
    return Promise.reject(new Error("unknown auth version " + opts.version));
  }

  // Runs the zapp whose boot/system.map is at mapUrl with the extra words;
  // resolves to the job's output text.
  function run(opts, mapUrl, words) {
    return login(opts).then(function (session) {
      var headers = {};
      if (session.token) {
        headers["X-Auth-Token"] = session.token;
      }
      return fetch(mapUrl, { headers: headers }).then(function (resp) {
        if (!resp.ok) {
          return failure("reading boot/system.map", resp);
        }
        return resp.json();
      }).then(function (job) {
        appendArgs(job, words);
        headers["X-Zerovm-Execute"] = "1.0";
        headers["Content-Type"] = "application/json";
        return fetch(session.storageUrl, {
          method: "POST",
          headers: headers,
          body: JSON.stringify(job)
        });
      }).then(function (resp) {
        if (!resp.ok) {
          return failure("running the job", resp);
        }
        return resp.text();
      });
    });
  }

  // Wires the page's form: submitting it runs the zapp.
  function attach(form, opts) {
    var output = document.getElementById("output");
    var status = document.getElementById("status");
    var button = form.querySelector("button");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var inputs = Array.prototype.map.call(
        form.querySelectorAll("input.zapp-arg"),
        function (el) {
          return { option: el.getAttribute("data-option"), value: el.value };
        });
      var mapUrl = new URL("boot/system.map", document.baseURI).href;
      button.disabled = true;
      status.className = "status";
      status.textContent = "Running…";
      output.textContent = "";
      run(opts, mapUrl, wordsOf(inputs)).then(function (text) {
        status.textContent = "Done.";
        output.textContent = text;
      }).catch(function (err) {
        status.className = "status error";
        status.textContent = err.message;
      }).then(function () {
        button.disabled = false;
      });
    });
  }

  return {
    escapeArg: escapeArg,
    wordsOf: wordsOf,
    appendArgs: appendArgs,
    login: login,
    run: run,
    attach: attach
  };
})();

if (typeof module !== "undefined" && module.exports) {
  module.exports = ZeroCloudApp;
}
