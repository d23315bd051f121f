# Build ${lib}.so, the CMSSW hls4ml-emulator plugin of model "${model}", with g++ alone:
#     make -f plugin.mk
# HLS: the hls4ml project; AP_TYPES: the ap_types headers (hls4ml's copy in the project by
# default; CMSSW's hls4mlEmulatorExtras external ships the same headers under include/ap_types).
# The model's translation unit is built without exceptions (4x faster to compile, as the C
# simulation), the Model class with them (a wrong payload type throws std::invalid_argument).
HLS ?= ${hls}
AP_TYPES ?= $$(HLS)/firmware/ap_types
CXX ?= g++
PLUGIN_CXXFLAGS ?= ${cxxflags}
PLUGIN_LDFLAGS = -shared -Wl,--version-script=${lib}.map ${ldflags} -Wl,-soname,${lib}.so
INC = -I. -I$$(HLS) -I$$(HLS)/firmware -I$$(AP_TYPES)
DEPS = ${lib}_project.h $$(HLS)/firmware/${project}.h

all: ${lib}.so

${lib}_model.o: ${lib}_model.cpp $$(DEPS) $$(HLS)/firmware/${project}.cpp
	$$(CXX) $$(PLUGIN_CXXFLAGS) -fno-exceptions $$(INC) -c ${lib}_model.cpp -o $$@

${lib}_plugin.o: ${lib}_plugin.cpp ${lib}.h hls4ml/emulator.h $$(DEPS)
	$$(CXX) $$(PLUGIN_CXXFLAGS) $$(INC) -c ${lib}_plugin.cpp -o $$@

${lib}.so: ${lib}_model.o ${lib}_plugin.o ${lib}.map
	$$(CXX) $$(PLUGIN_CXXFLAGS) ${lib}_model.o ${lib}_plugin.o -o $$@ $$(PLUGIN_LDFLAGS)

# the only dynamic symbols it defines: create_model, destroy_model, tml_plugin_info
check-symbols: ${lib}.so
	nm -D --defined-only ${lib}.so

clean:
	rm -f ${lib}_model.o ${lib}_plugin.o ${lib}.so

.PHONY: all check-symbols clean
