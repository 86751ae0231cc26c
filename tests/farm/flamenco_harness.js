// A stand-in for Flamenco Manager's job compiler runtime, to run a job type script in Node.js.
//
//   node flamenco_harness.js SCRIPT.js JOB.json
//
// JOB.json: {"name": "...", "settings": {...}}. Prints one JSON object on stdout:
//   {"ok": true, "globals": [...], "jobType": JOB_TYPE, "print": [...], "tasks": [...]}
//   {"ok": false, "globals": [...], "error": "message"}          (exit code 1: the script threw)
// JOB.json may also be a list of jobs: one such line per job, each compiled in a fresh context, exit code 0.
//
// What it mimics (Flamenco 3's internal/manager/job_compilers: scripts.go newGojaVM, author.go):
// - the script runs in strict mode (goja.Compile(..., strict=true)) in a fresh context whose only globals
//   are Flamenco's: print, alert, frameChunker, frameCount, formatTimestampLocal, shellSplit, author, path,
//   process. Only `author`, `print` and `alert` are implemented here; the others throw when called, so a
//   script that starts using them fails here until this harness learns them. There is no console, no require.
// - author.Task(name, type): both trimmed, both required (throws otherwise); priority 50.
// - author.Command(name, parameters, totalStepCount = 0).
// - task.addCommand(command), task.addDependency(task), job.addTask(task).
// - the script's top-level JOB_TYPE and compileJob are read back from the global scope.
"use strict";

const fs = require("node:fs");
const vm = require("node:vm");

const FLAMENCO_GLOBALS = [
    "print", "alert", "frameChunker", "frameCount", "formatTimestampLocal", "shellSplit",
    "author", "path", "process",
];

function notImplemented(name) {
    return () => {
        throw new Error(`flamenco_harness: ${name} exists in Flamenco but is not implemented by this harness`);
    };
}

function makeGlobals(printed) {
    let nextId = 0;
    const author = {
        Task(name, taskType) {
            name = String(name ?? "").trim();
            taskType = String(taskType ?? "").trim();
            if (!name) {
                throw new Error("author.Task(name, type): name is required");
            }
            if (!taskType) {
                throw new Error("author.Task(name, type): type is required");
            }
            nextId += 1;
            const task = {
                uuid: `task-${nextId}`,
                name: name,
                type: taskType,
                priority: 50,
                commands: [],
                dependencies: [],
                addCommand(command) {
                    task.commands.push(command);
                },
                addDependency(dep) {
                    task.dependencies.push(dep);
                },
            };
            return task;
        },
        Command(name, parameters, totalStepCount) {
            return { name: name, parameters: parameters, totalStepCount: totalStepCount ?? 0 };
        },
    };
    const pathModule = {};
    for (const fn of ["basename", "dirname", "join", "stem"]) {
        pathModule[fn] = notImplemented(`path.${fn}`);
    }
    return {
        print: (...args) => printed.push(args.map(String).join(" ")),
        alert: (...args) => printed.push("ALERT " + args.map(String).join(" ")),
        frameChunker: notImplemented("frameChunker"),
        frameCount: notImplemented("frameCount"),
        formatTimestampLocal: notImplemented("formatTimestampLocal"),
        shellSplit: notImplemented("shellSplit"),
        author: author,
        path: pathModule,
        process: { get platform() { return notImplemented("process.platform")(); } },
    };
}

function describeTask(task) {
    return {
        uuid: task.uuid,
        name: task.name,
        type: task.type,
        priority: task.priority,
        commands: task.commands,
        dependencies: task.dependencies.map((dep) => dep.uuid),
    };
}

function compileOne(source, scriptPath, jobSpec) {
    const printed = [];
    const context = vm.createContext(makeGlobals(printed));
    // V8 puts a `console` into every new context; goja has none, so take it away.
    vm.runInContext("delete globalThis.console", context);
    const globals = FLAMENCO_GLOBALS.filter((name) => name in context);
    const tasks = [];
    const job = {
        name: jobSpec.name ?? "test job",
        jobType: jobSpec.jobType ?? "rigstyle",
        priority: 50,
        created: new Date(0),
        settings: jobSpec.settings ?? {},
        metadata: jobSpec.metadata ?? {},
        addTask(task) {
            tasks.push(task);
        },
    };

    try {
        new vm.Script(`"use strict";\n${source}`, { filename: scriptPath }).runInContext(context);
        const jobType = vm.runInContext("typeof JOB_TYPE === 'undefined' ? undefined : JOB_TYPE", context);
        const compileJob = vm.runInContext("typeof compileJob === 'undefined' ? undefined : compileJob", context);
        if (typeof jobType !== "object" || jobType === null) {
            throw new Error("script does not define a JOB_TYPE object");
        }
        if (typeof compileJob !== "function") {
            throw new Error("script does not define a compileJob(job) function");
        }
        compileJob(job);
        return { ok: true, globals, jobType, print: printed, tasks: tasks.map(describeTask) };
    } catch (err) {
        // Errors from the vm context are not `instanceof Error` of this realm; read name/message directly.
        const message = err && err.message !== undefined ? `${err.name}: ${err.message}` : String(err);
        return { ok: false, globals, error: message, print: printed };
    }
}

function main() {
    const [scriptPath, jobPath] = process.argv.slice(2);
    if (!scriptPath || !jobPath) {
        process.stderr.write("usage: node flamenco_harness.js SCRIPT.js JOB.json\n");
        process.exit(2);
    }
    const source = fs.readFileSync(scriptPath, "utf8");
    const spec = JSON.parse(fs.readFileSync(jobPath, "utf8"));
    if (Array.isArray(spec)) {
        // Several jobs, each compiled in a fresh context: one JSON line each, exit code 0.
        for (const jobSpec of spec) {
            process.stdout.write(JSON.stringify(compileOne(source, scriptPath, jobSpec)) + "\n");
        }
        return;
    }
    const out = compileOne(source, scriptPath, spec);
    process.stdout.write(JSON.stringify(out) + "\n");
    process.exit(out.ok ? 0 : 1);
}

main();
