// trigger-ml's host for CMSSW hls4ml-emulator plugins: the sequence of hls4mlEmulator::ModelLoader
// (dlopen, dlsym create_model / destroy_model, create_model()) and of a CMSSW producer per event
// (prepare_input, predict, read_result), for one or several plugins in one process.
//
// Usage: tml_plugin_driver local|global EVENTS  LIB IN OUT  [LIB IN OUT ...]
//   local|global  dlopen mode: RTLD_LAZY | RTLD_LOCAL (ModelLoader's) or RTLD_LAZY | RTLD_GLOBAL
//   EVENTS        events to run; IN holds EVENTS x n_inputs raw integers of that plugin (int64,
//                 native byte order), OUT receives EVENTS x n_outputs raw integers
// Every plugin is loaded and created before the first event, and the events are interleaved
// (event e runs through every plugin before event e + 1), so plugins that shared code or data
// would disturb each other. Prints one line per plugin: its index, then its tml_plugin_info().
#include <dlfcn.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "hls4ml/emulator.h"

namespace {

struct Loaded {
    std::string path, in_path, out_path;
    void *lib = nullptr;
    hls4mlEmulator::destroy_model_cls *destroy = nullptr;
    hls4mlEmulator::Model *model = nullptr;
    std::string info;
    long n_in = 0, n_out = 0;
    std::vector<int64_t> in, out;
};

[[noreturn]] void fail(const std::string &msg, int code = 2) {
    std::fprintf(stderr, "tml_plugin_driver: %s\n", msg.c_str());
    std::exit(code);
}

long info_field(const std::string &info, const std::string &key, const std::string &path) {
    const std::string tag = key + "=";
    size_t at = info.find(tag);
    if (at == std::string::npos) fail(path + ": tml_plugin_info() has no " + key);
    return std::strtol(info.c_str() + at + tag.size(), nullptr, 10);
}

std::vector<int64_t> read_words(const std::string &path, size_t n) {
    std::vector<int64_t> v(n);
    FILE *f = std::fopen(path.c_str(), "rb");
    if (!f) fail("cannot open " + path);
    size_t got = std::fread(v.data(), sizeof(int64_t), n, f);
    std::fclose(f);
    if (got != n) fail(path + ": expected " + std::to_string(n) + " integers, read " + std::to_string(got));
    return v;
}

void write_words(const std::string &path, const std::vector<int64_t> &v) {
    FILE *f = std::fopen(path.c_str(), "wb");
    if (!f || std::fwrite(v.data(), sizeof(int64_t), v.size(), f) != v.size() || std::fclose(f) != 0)
        fail("cannot write " + path);
}

}  // namespace

int main(int argc, char **argv) {
    if (argc < 6 || (argc - 3) % 3 != 0)
        fail(std::string("usage: ") + argv[0] + " local|global EVENTS LIB IN OUT [LIB IN OUT ...]");
    const std::string mode = argv[1];
    if (mode != "local" && mode != "global") fail("mode must be local or global, not " + mode);
    const int flags = RTLD_LAZY | (mode == "local" ? RTLD_LOCAL : RTLD_GLOBAL);
    const long events = std::strtol(argv[2], nullptr, 10);
    if (events < 0) fail("EVENTS must be >= 0");

    std::vector<Loaded> plugins;
    for (int a = 3; a < argc; a += 3) {
        Loaded p;
        p.path = argv[a], p.in_path = argv[a + 1], p.out_path = argv[a + 2];
        p.lib = dlopen(p.path.c_str(), flags);  // as ModelLoader::load_model
        if (!p.lib) fail(std::string("cannot load library: ") + dlerror());
        dlerror();
        auto create = reinterpret_cast<hls4mlEmulator::create_model_cls *>(dlsym(p.lib, "create_model"));
        if (const char *e = dlerror()) fail(p.path + ": no create_model: " + e);
        p.destroy = reinterpret_cast<hls4mlEmulator::destroy_model_cls *>(dlsym(p.lib, "destroy_model"));
        if (const char *e = dlerror()) fail(p.path + ": no destroy_model: " + e);
        auto info = reinterpret_cast<const char *(*)()>(dlsym(p.lib, "tml_plugin_info"));
        if (const char *e = dlerror()) fail(p.path + ": no tml_plugin_info (not a trigger-ml plugin): " + e);
        p.info = info();
        p.n_in = info_field(p.info, "n_inputs", p.path), p.n_out = info_field(p.info, "n_outputs", p.path);
        p.in = read_words(p.in_path, static_cast<size_t>(events * p.n_in));
        p.out.assign(static_cast<size_t>(events * p.n_out), 0);
        p.model = create();
        plugins.push_back(std::move(p));
    }
    for (size_t i = 0; i < plugins.size(); i++) std::printf("%zu\t%s\n", i, plugins[i].info.c_str());

    try {
        for (long e = 0; e < events; e++) {
            for (auto &p : plugins) {
                const int64_t *x = p.in.data() + e * p.n_in;
                int64_t *y = p.out.data() + e * p.n_out;
                p.model->prepare_input(x);
                p.model->predict();
                p.model->read_result(y);
            }
        }
    } catch (const std::exception &exc) {
        fail(std::string("a plugin threw: ") + exc.what(), 3);
    }

    for (auto &p : plugins) {
        p.destroy(p.model);
        write_words(p.out_path, p.out);
    }
    for (auto &p : plugins) dlclose(p.lib);
    return 0;
}
