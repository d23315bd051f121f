// The plugin interface of CMSSW's hls4ml emulators (cms-hls4ml/hls4mlEmulatorExtras,
// include/hls4ml/emulator.h), written by trigger-ml from its documented ABI:
//   - class hls4mlEmulator::Model with, in this order, the pure virtual functions
//     prepare_input(std::any), predict(), read_result(std::any) and a defaulted virtual
//     destructor (the vtable layout a host compiled against the original header expects);
//   - a plugin library exports extern "C" create_model() (a new Model) and destroy_model(Model*),
//     which hls4mlEmulator::ModelLoader finds with dlsym after dlopen(<name>.so, RTLD_LAZY | RTLD_LOCAL).
// The include guard is the original header's, so a translation unit that sees both gets one.
// This file holds no ModelLoader: CMSSW's libemulator_interface.so provides it, and trigger-ml's
// driver (tml_plugin_driver.cpp) repeats its dlopen/dlsym sequence.
#ifndef HLS4ML_EMULATOR_H_
#define HLS4ML_EMULATOR_H_

#include <any>

namespace hls4mlEmulator {

    class Model {
    public:
        virtual void prepare_input(std::any input) = 0;
        virtual void predict() = 0;
        virtual void read_result(std::any result) = 0;
        virtual ~Model() = default;
    };

    typedef Model *create_model_cls();
    typedef void destroy_model_cls(Model *);

}  // namespace hls4mlEmulator

#endif
