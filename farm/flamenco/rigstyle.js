// RigStyle job type for Flamenco 3 (a job compiler script).
//
// Install: copy this file into the `scripts/` folder next to the flamenco-manager executable. The job type
// is named after the file ("rigstyle"). See docs/flamenco.md.
//
// One job = one shot, three stages:
//   passes-A-B      (task type "blender")          the rig's passes of frames A..B, one task per chunk
//   refine          (task type "rigstyle-refine")  the whole shot on the GPU backends; needs every passes task
//   composite-A-B   (task type "blender")          compositor output of frames A..B; needs refine
//
// Only workers that list "rigstyle-refine" in the `task_types` of their flamenco-worker.yaml get the refine
// task, so list it only on machines that can reach the GPU backends.
//
// Globals used: `author` and `print`, both provided by Flamenco Manager. Keep it that way (no console,
// no require): tests/farm/flamenco_harness.js runs this file with only Flamenco's globals.

const REFINE_TASK_TYPE = "rigstyle-refine";
const BLENDER_TASK_TYPE = "blender";

const JOB_TYPE = {
    label: "RigStyle Shot",
    settings: [
        {
            key: "frames", type: "string", required: true,
            eval: "f'{C.scene.frame_start}-{C.scene.frame_end}'",
            evalInfo: { showLinkButton: true, description: "Scene frame range" },
            description: "Frames to render, one inclusive range: 'A-B' (or 'A..B', or a single frame 'A')",
        },
        {
            key: "chunk_size", type: "int32", default: 10, propargs: { min: 1 }, visible: "submission",
            description: "Frames per passes/composite task",
        },
        {
            key: "shot_dir", type: "string", subtype: "dir_path", required: true, visible: "submission",
            description: "Shot folder (passes, manifest, refined frames, composite); must be the same path on every worker",
        },
        {
            key: "backends", type: "string", required: true, visible: "submission",
            description: "RigStyle backend addresses, space-separated, e.g. 'tcp://gpu1:7557 tcp://gpu2:7557'",
        },
        {
            key: "token_file", type: "string", subtype: "file_path", default: "", visible: "submission",
            description: "File holding the backends' token, as seen from the refine worker (empty: no token)",
        },
        {
            key: "segment", type: "int32", default: 0, propargs: { min: 0 }, visible: "submission",
            description: "Passed to 'rigstyle refine --segment'; 0 leaves it out (rigstyle's default)",
        },
        {
            key: "rigstyle_exe", type: "string", default: "rigstyle", visible: "submission",
            description: "The rigstyle executable on the refine worker (name on PATH or full path)",
        },
        // Filled in by the Flamenco Blender add-on on submission.
        { key: "blendfile", type: "string", required: true, visible: "web", description: "Path of the blend file" },
    ],
};

function compileJob(job) {
    const settings = job.settings;
    const range = parseFrameRange(settings.frames);
    const chunkSize = parseChunkSize(settings.chunk_size);
    const shotDir = requireString(settings, "shot_dir");
    const blendfile = requireString(settings, "blendfile");
    const backends = parseBackends(settings.backends);
    const chunks = chunkFrames(range.first, range.last, chunkSize);

    print(`RigStyle shot: frames ${range.first}-${range.last} in ${chunks.length} chunks, ${backends.length} backends`);

    const passesTasks = chunks.map((chunk) =>
        blenderStageTask("passes", chunk, blendfile, shotDir));

    const refineTask = author.Task("refine", REFINE_TASK_TYPE);
    refineTask.addCommand(author.Command("exec", {
        exe: optionalString(settings, "rigstyle_exe") || "rigstyle",
        args: refineArgs(settings, shotDir, backends),
    }));
    for (const task of passesTasks) {
        refineTask.addDependency(task);
    }

    const compositeTasks = chunks.map((chunk) => {
        const task = blenderStageTask("composite", chunk, blendfile, shotDir);
        task.addDependency(refineTask);
        return task;
    });

    for (const task of passesTasks) {
        job.addTask(task);
    }
    job.addTask(refineTask);
    for (const task of compositeTasks) {
        job.addTask(task);
    }
}

// A task running `bpy.ops.rigstyle.farm(stage=..., frames=..., out_dir=...)` in background Blender.
// `--python-exit-code 1` makes Blender exit with 1 when the operator raises (bpy.ops raises when an
// operator reports an error), so a failed frame fails the task.
function blenderStageTask(stage, chunk, blendfile, shotDir) {
    const frames = `${chunk.first}-${chunk.last}`;
    // JSON string literals are valid Python string literals (same escapes), so any path is quoted safely.
    const call = `bpy.ops.rigstyle.farm(stage=${JSON.stringify(stage)}, frames=${JSON.stringify(frames)}, ` +
        `out_dir=${JSON.stringify(shotDir)})`;
    const task = author.Task(`${stage}-${frames}`, BLENDER_TASK_TYPE);
    task.addCommand(author.Command("blender-render", {
        exe: "{blender}",
        exeArgs: "{blenderArgs}",
        argsBefore: ["-b"],
        blendfile: blendfile,
        args: ["--python-exit-code", "1", "--python-expr", `import bpy; ${call}`],
    }));
    return task;
}

function refineArgs(settings, shotDir, backends) {
    const args = ["refine", shotDir];
    for (const address of backends) {
        args.push("--backend", address);
    }
    const tokenFile = optionalString(settings, "token_file");
    if (tokenFile) {
        args.push("--token-file", tokenFile);
    }
    const segment = settings.segment;
    if (segment !== undefined && segment !== null && segment !== 0) {
        if (!Number.isInteger(segment) || segment < 0) {
            throw new Error(`rigstyle: segment must be a whole number >= 0, got ${JSON.stringify(segment)}`);
        }
        args.push("--segment", String(segment));
    }
    args.push("--progress", "json");
    return args;
}

// "A-B", "A..B" or "A"; frames may be negative ("-5-10"). Returns {first, last}.
function parseFrameRange(value) {
    if (typeof value === "number" && Number.isInteger(value)) {
        return { first: value, last: value };
    }
    const text = typeof value === "string" ? value.trim() : "";
    const single = /^(-?\d+)$/.exec(text);
    if (single) {
        const frame = parseInt(single[1], 10);
        return { first: frame, last: frame };
    }
    const pair = /^(-?\d+)\s*(?:-|\.\.)\s*(-?\d+)$/.exec(text);
    if (!pair) {
        throw new Error(`rigstyle: frames must be one range like '1-250' (or '1..250', or '7'), ` +
            `got ${JSON.stringify(value)}`);
    }
    const first = parseInt(pair[1], 10);
    const last = parseInt(pair[2], 10);
    if (last < first) {
        throw new Error(`rigstyle: frames '${text}' ends before it starts (${last} < ${first})`);
    }
    return { first: first, last: last };
}

function parseChunkSize(value) {
    if (value === undefined || value === null) {
        return 10;
    }
    if (!Number.isInteger(value) || value < 1) {
        throw new Error(`rigstyle: chunk_size must be a whole number >= 1, got ${JSON.stringify(value)}`);
    }
    return value;
}

function parseBackends(value) {
    const addresses = (typeof value === "string" ? value : "").split(/\s+/).filter((a) => a.length > 0);
    if (addresses.length === 0) {
        throw new Error("rigstyle: backends is empty; give at least one address like tcp://gpu1:7557");
    }
    for (const address of addresses) {
        if (!/^(tcp|ipc):\/\/\S+$/.test(address)) {
            throw new Error(`rigstyle: backend address ${JSON.stringify(address)} is not tcp://HOST:PORT ` +
                "or ipc:///PATH");
        }
    }
    return addresses;
}

function chunkFrames(first, last, size) {
    const chunks = [];
    for (let start = first; start <= last; start += size) {
        chunks.push({ first: start, last: Math.min(start + size - 1, last) });
    }
    return chunks;
}

function requireString(settings, key) {
    const value = optionalString(settings, key);
    if (!value) {
        throw new Error(`rigstyle: setting '${key}' is required`);
    }
    return value;
}

function optionalString(settings, key) {
    const value = settings[key];
    if (value === undefined || value === null) {
        return "";
    }
    if (typeof value !== "string") {
        throw new Error(`rigstyle: setting '${key}' must be a string, got ${JSON.stringify(value)}`);
    }
    return value.trim();
}
