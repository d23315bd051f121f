/* Run the emulator on a vector file: each line of the input holds the TML_N_IN raw input
 * integers of one event; each line of the output gets the TML_N_OUT raw output integers.
 * Usage: ./run_vectors vectors_in.txt vectors_out.txt
 */
#include <inttypes.h>
#include <stdio.h>

#include "tml_emulator.h"

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s vectors_in.txt vectors_out.txt\n", argv[0]);
        return 2;
    }
    FILE *fi = fopen(argv[1], "r");
    if (!fi) { perror(argv[1]); return 2; }
    FILE *fo = fopen(argv[2], "w");
    if (!fo) { perror(argv[2]); return 2; }
    int64_t in[TML_N_IN], out[TML_N_OUT];
    long events = 0;
    for (;;) {
        int i = 0, r = 0;
        for (; i < TML_N_IN; i++) {
            r = fscanf(fi, "%" SCNd64, &in[i]);
            if (r != 1) break;
        }
        if (i == 0 && r == EOF) break;
        if (i != TML_N_IN) {
            fprintf(stderr, "%s: event %ld: read %d of %d integers\n", argv[1], events + 1, i, TML_N_IN);
            return 1;
        }
        tml_predict(in, out, 1);
        for (int j = 0; j < TML_N_OUT; j++) fprintf(fo, j ? " %" PRId64 : "%" PRId64, out[j]);
        fputc('\n', fo);
        events++;
    }
    if (fclose(fo) != 0) { perror(argv[2]); return 2; }
    fprintf(stderr, "%ld events\n", events);
    return 0;
}
