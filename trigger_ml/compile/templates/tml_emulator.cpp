// trigger-ml emulator: the C ABI of tml_emulator.h around hls4ml's C simulation (myproject).
#include "tml_emulator.h"

#include <cmath>

#include "myproject_bridge.cpp"

extern "C" int tml_predict(const int64_t *in, int64_t *out, size_t n) {
    double x[TML_N_IN], y[TML_N_OUT];
    for (size_t e = 0; e < n; e++) {
        for (int i = 0; i < TML_N_IN; i++) x[i] = std::ldexp((double)in[e * TML_N_IN + i], -TML_IN_FRAC);
        myproject_double(x, y);
        for (int j = 0; j < TML_N_OUT; j++) out[e * TML_N_OUT + j] = (int64_t)std::ldexp(y[j], TML_OUT_FRAC);
    }
    return 0;
}

extern "C" const char *tml_model_sha256(void) { return "${model_sha256}"; }

extern "C" size_t tml_n_in(void) { return TML_N_IN; }

extern "C" size_t tml_n_out(void) { return TML_N_OUT; }
