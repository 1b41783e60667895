//! The cross-compilation targets: one row per target, and the size budget of
//! the release binary. This is the one place that knows them; `cargo xtask
//! dist` includes this file (`#[path]` in xtask/src/main.rs) and reads nothing
//! else, so adding a target means adding a row here.
//!
//! How a row is used: rustc builds for `triple`; zig links, as `zig cc -target
//! <zig_target> [-mcpu=<zig_cpu>]`, with its own musl, so no C cross toolchain
//! is needed; the result must be an ELF file matching `elf`, and it is run
//! under `qemu` (Debian's qemu-user-static) unless the host has the same
//! architecture.

/// The size budget of a stripped release binary, in bytes: (most targets,
/// MIPS). MIPS code is larger for the same program: fixed 32-bit
/// instructions, two of them to load any address, and branch delay slots.
pub const SIZE_BUDGET: (u64, u64) = (448 * 1024, 576 * 1024);

pub struct Target {
    /// The Rust target triple.
    pub triple: &'static str,
    /// The zig target that links it (`zig cc -target …`).
    pub zig_target: &'static str,
    /// A zig CPU name and features (`-mcpu=…`, zig spelling: `cortex_a7`,
    /// `generic+v7a`), when zig's default CPU for `zig_target` is not the
    /// one Rust compiles for.
    pub zig_cpu: Option<&'static str>,
    /// The qemu-user binary that runs it on another architecture.
    pub qemu: &'static str,
    /// rustflags for this target alone, after those dist gives every target.
    pub rustflags: &'static str,
    /// Whether std must be built from source because rustup ships no
    /// prebuilt std (tier 3). dist builds it from source for every target
    /// anyway, with `optimize_for_size`, because that makes the binary smaller.
    pub std_from_source: bool,
    /// What the binary's ELF header must say.
    pub elf: Elf,
    /// Which half of `SIZE_BUDGET` applies.
    pub budget: Budget,
    /// Whether `cargo xtask test` runs the integration tests' CI subset
    /// against this target's binary under qemu (`--all-targets` runs the
    /// whole suite on every target).
    pub tested_in_ci: bool,
}

/// The identity of an executable: word size, byte order and `e_machine`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Elf {
    pub bits: u8,
    pub big_endian: bool,
    pub machine: u16,
}

#[derive(Clone, Copy)]
pub enum Budget {
    Common,
    Mips,
}

impl Budget {
    pub fn bytes(self) -> u64 {
        match self {
            Budget::Common => SIZE_BUDGET.0,
            Budget::Mips => SIZE_BUDGET.1,
        }
    }
}

/// LLVM's machine outliner: repeated instruction sequences become one
/// function that is called, which only makes the code smaller (2-3%). LLVM
/// runs it by default for size-optimised code on AArch64 only; it has no
/// MIPS support.
const OUTLINER: &str = "-Cllvm-args=-enable-machine-outliner=always";

const X86_64: u16 = 62;
const AARCH64: u16 = 183;
const ARM: u16 = 40;
const MIPS: u16 = 8;

pub const TARGETS: &[Target] = &[
    Target {
        triple: "x86_64-unknown-linux-musl",
        zig_target: "x86_64-linux-musl",
        zig_cpu: None,
        qemu: "qemu-x86_64-static",
        rustflags: OUTLINER,
        std_from_source: false,
        elf: Elf { bits: 64, big_endian: false, machine: X86_64 },
        budget: Budget::Common,
        tested_in_ci: false,
    },
    Target {
        triple: "aarch64-unknown-linux-musl",
        zig_target: "aarch64-linux-musl",
        zig_cpu: None,
        qemu: "qemu-aarch64-static",
        rustflags: "",
        std_from_source: false,
        elf: Elf { bits: 64, big_endian: false, machine: AARCH64 },
        budget: Budget::Common,
        tested_in_ci: false,
    },
    Target {
        triple: "armv7-unknown-linux-musleabihf",
        zig_target: "arm-linux-musleabihf",
        // Rust's baseline for this target, "+v7,+vfp3d16,+thumb2,-neon": musl
        // built for it runs on every ARMv7-A with an FPU (cortex_a7 would
        // assume NEON and VFPv4, which a Cortex-A8 or A9 may lack).
        zig_cpu: Some("generic+v7a+vfp3d16+thumb2-neon"),
        qemu: "qemu-arm-static",
        // Thumb-2 for the Rust code, as Debian's armhf port compiles C: as
        // fast on a Cortex-A, and a quarter smaller than the A32 default.
        // rustc warns that `thumb-mode` is not a stable target feature.
        // Then the outliner (see OUTLINER).
        rustflags: "-Ctarget-feature=+thumb-mode -Cllvm-args=-enable-machine-outliner=always",
        std_from_source: false,
        elf: Elf { bits: 32, big_endian: false, machine: ARM },
        budget: Budget::Common,
        tested_in_ci: true,
    },
    Target {
        triple: "mipsel-unknown-linux-musl",
        zig_target: "mipsel-linux-musleabi",
        zig_cpu: None,
        qemu: "qemu-mipsel-static",
        rustflags: "",
        std_from_source: true,
        elf: Elf { bits: 32, big_endian: false, machine: MIPS },
        budget: Budget::Mips,
        tested_in_ci: true,
    },
    Target {
        triple: "mips-unknown-linux-musl",
        zig_target: "mips-linux-musleabi",
        zig_cpu: None,
        qemu: "qemu-mips-static",
        rustflags: "",
        std_from_source: true,
        elf: Elf { bits: 32, big_endian: true, machine: MIPS },
        budget: Budget::Mips,
        tested_in_ci: true,
    },
];
