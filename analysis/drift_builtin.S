/* analysis/drift_builtin.S: the reference English tables (english.gguf,
 * made by `make drift-reference`) in the library's read-only data, read by
 * bl_drift_ref_builtin().  Hidden symbols: not part of the ABI. */
        .section .rodata
        .balign 32
        .globl  bli_drift_builtin_data
        .hidden bli_drift_builtin_data
bli_drift_builtin_data:
        .incbin "english.gguf"
bli_drift_builtin_end:
        .balign 8
        .globl  bli_drift_builtin_size
        .hidden bli_drift_builtin_size
bli_drift_builtin_size:
        .quad   bli_drift_builtin_end - bli_drift_builtin_data
        .section .note.GNU-stack,"",@progbits
