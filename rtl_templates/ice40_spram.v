// hwgen_ice40_spram: a WIDTH x DEPTH single-port RAM tiled from iCE40UP SB_SPRAM256KA blocks
// (16 bits x 16,384 words each): ceil(WIDTH / 16) columns side by side, ceil(DEPTH / 16384)
// rows, the row chosen by the address bits above the 14th.
//
// Used by hwgen.hardware.memories.LoadedWeights for weights that do not fit the block RAM and
// are written at run time over the host link (SPRAM is not initialised by the bitstream).
// Written by hand because Yosys infers SPRAM only from a pattern (synth_ice40 -spram) that
// Amaranth's Memory does not produce, and because the tiling and the held read data are the
// contract the engines rely on:
//
//   * a read (re = 1, we = 0) presents mem[addr] on rdata after the clock edge;
//   * rdata holds its value while re = 0 (CHIPSELECT low keeps DATAOUT);
//   * a write (we = 1) stores wdata at addr; rdata is undefined after a write cycle until
//     the next read (SB_SPRAM256KA drives x there), which the engines never look at because
//     weights are written only while no inference runs.
//
// Simulation uses the SB_SPRAM256KA model from Yosys' techlibs/ice40/cells_sim.v
// (hwgen.simulate adds it), so the same tiling is what cocotb checks.
`default_nettype none
module hwgen_ice40_spram #(
    parameter integer WIDTH = 16,
    parameter integer DEPTH = 16384,
    parameter integer ADDR_BITS = 14
) (
    input  wire                 clk,
    input  wire [ADDR_BITS-1:0] addr,
    input  wire [WIDTH-1:0]     wdata,
    input  wire                 we,
    input  wire                 re,
    output wire [WIDTH-1:0]     rdata
);
    localparam integer COLS = (WIDTH + 15) / 16;
    localparam integer ROWS = (DEPTH + 16383) / 16384;

    wire [31:0] addr_wide = addr;
    wire [13:0] word = addr_wide[13:0];
    wire [17:0] row = addr_wide[31:14];
    reg  [17:0] row_q = 18'd0;

    wire [COLS*16-1:0]      data_in = wdata;
    wire [ROWS*COLS*16-1:0] data_out;

    genvar r, c;
    generate
        for (r = 0; r < ROWS; r = r + 1) begin : g_row
            wire selected = (re | we) && (row == r);
            for (c = 0; c < COLS; c = c + 1) begin : g_col
                SB_SPRAM256KA ram (
                    .ADDRESS(word),
                    .DATAIN(data_in[c*16 +: 16]),
                    .MASKWREN(4'b1111),
                    .WREN(we),
                    .CHIPSELECT(selected),
                    .CLOCK(clk),
                    .STANDBY(1'b0),
                    .SLEEP(1'b0),
                    .POWEROFF(1'b1),
                    .DATAOUT(data_out[(r*COLS + c)*16 +: 16])
                );
            end
        end
    endgenerate

    always @(posedge clk)
        if (re && !we)
            row_q <= row;

    assign rdata = data_out[row_q*COLS*16 +: WIDTH];
endmodule
`default_nettype wire
