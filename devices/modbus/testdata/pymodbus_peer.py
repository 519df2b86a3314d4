#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A pymodbus 3.0 peer for fieldgate's Modbus interop tests and benchmarks.

serve: a Modbus device (TCP, or RTU on a serial port) implementing
fieldgate's reference register map (modbus.DefaultProfile) with pymodbus's
own framing, PDU parsing and Read Device Identification. pymodbus's file
record handlers are stubs, so the two execute methods are replaced with a
small byte store, and ReadFileRecordResponse.encode is replaced because
pymodbus 3.0 writes each sub-response as (reference type, register count)
instead of (length, reference type). Prints one line
"READY port=<tcp port> running_sha256=<hex>" once it serves.

client: reads a device with pymodbus's client (identity, registers 100..111,
the first records of the running image from file 1001, one write/read of
file 1) and prints the results as JSON; or, with --push FILE, writes that
image with 0x15 as fast as pymodbus can (the benchmark's peer) and prints
the seconds it took.

Run with Debian's interpreter: /usr/bin/python3 (python3-pymodbus,
python3-serial-asyncio for RTU).
"""

import argparse
import asyncio
import hashlib
import json
import logging
import struct
import sys
import time
import zlib

from pymodbus.datastore import (
    ModbusSequentialDataBlock,
    ModbusServerContext,
    ModbusSlaveContext,
)
from pymodbus.device import ModbusDeviceIdentification
from pymodbus.file_message import (
    FileRecord,
    ReadFileRecordRequest,
    ReadFileRecordResponse,
    WriteFileRecordRequest,
    WriteFileRecordResponse,
)
from pymodbus.mei_message import ReadDeviceInformationRequest
from pymodbus.pdu import ModbusExceptions
from pymodbus.register_read_message import ReadHoldingRegistersRequest
from pymodbus.transaction import ModbusRtuFramer

FILE_BASE, BACKUP_BASE, RECORDS = 1, 1001, 10000
CMD, STATUS, LENGTH, RUNNING_LENGTH, INTERLOCK, DIGEST = 100, 101, 102, 104, 106, 110
VERIFY, ACTIVATE = 1, 2
IDLE, OK, ERROR = 0, 2, 3


class Device:
    """The peer's state: update store, running image, identity."""

    def __init__(self, hw, version, size, running):
        self.hw = hw
        self.store = bytearray()
        self.running = make_image(hw, version, size)
        self.identity = None
        self.regs = None
        self.process_running = running

    def area(self, file):
        if file >= BACKUP_BASE:
            return BACKUP_BASE, self.running, False
        if file >= FILE_BASE:
            return FILE_BASE, self.store, True
        return None, None, False


def make_image(hw, version, size):
    head = f"FGSIM1 hw={hw} version={version} size={size}\n".encode()
    body = bytes((i * 7 + 3) & 0xFF for i in range(size - len(head)))
    return bytearray(head + body)


def parse_header(img):
    line = bytes(img[:512]).split(b"\n", 1)[0].decode(errors="replace").split(" ")
    if len(line) != 4 or line[0] != "FGSIM1":
        return None
    fields = dict(f.split("=", 1) for f in line[1:] if "=" in f)
    try:
        return fields["hw"], fields["version"], int(fields["size"])
    except (KeyError, ValueError):
        return None


DEV = None


def write_execute(self, context):  # replaces WriteFileRecordRequest.execute
    for r in self.records:
        base, data, writable = DEV.area(r.file_number)
        if not writable or r.record_number + r.record_length > RECORDS:
            return self.doException(ModbusExceptions.IllegalAddress)
        off = ((r.file_number - base) * RECORDS + r.record_number) * 2
        end = off + len(r.record_data)
        if len(data) < end:
            data.extend(bytes(end - len(data)))
        data[off:end] = r.record_data
    return WriteFileRecordResponse(self.records)


def read_execute(self, context):  # replaces ReadFileRecordRequest.execute
    out = []
    for r in self.records:
        base, data, _ = DEV.area(r.file_number)
        if base is None or r.record_number + r.record_length > RECORDS:
            return self.doException(ModbusExceptions.IllegalAddress)
        off = ((r.file_number - base) * RECORDS + r.record_number) * 2
        end = off + 2 * r.record_length
        if end > len(data) + len(data) % 2:
            return self.doException(ModbusExceptions.IllegalAddress)
        chunk = bytes(data[off:end])
        out.append(FileRecord(record_data=chunk + bytes(end - off - len(chunk))))
    return ReadFileRecordResponse(out)


def read_response_encode(self):  # fixes ReadFileRecordResponse.encode
    packet = struct.pack("B", sum(len(r.record_data) + 2 for r in self.records))
    for r in self.records:
        packet += struct.pack(">BB", len(r.record_data) + 1, 0x06) + r.record_data
    return packet


WriteFileRecordRequest.execute = write_execute
ReadFileRecordRequest.execute = read_execute
ReadFileRecordResponse.encode = read_response_encode


class Registers(ModbusSequentialDataBlock):
    """Holding registers that act on writes to the command register."""

    def setValues(self, address, values):  # pylint: disable=invalid-name
        super().setValues(address, values)
        if address <= CMD < address + len(values):
            self.command(values[CMD - address])

    def u32(self, addr):
        hi, lo = self.getValues(addr, 2)
        return hi << 16 | lo

    def put_u32(self, addr, v):
        super().setValues(addr, [v >> 16, v & 0xFFFF])

    def command(self, cmd):
        n = self.u32(LENGTH)
        img = bytes(DEV.store[:n])
        status = ERROR
        if cmd == VERIFY:
            self.put_u32(DIGEST, zlib.crc32(img))
            hdr = parse_header(img)
            if hdr and hdr[0] == DEV.hw and hdr[2] == len(img) == n:
                status = OK
        elif cmd == ACTIVATE:
            hdr = parse_header(img)
            if hdr and hdr[0] == DEV.hw and hdr[2] == len(img) == n:
                DEV.running = bytearray(img)
                DEV.identity[0x02] = hdr[1]
                self.put_u32(RUNNING_LENGTH, len(img))
                status = OK
        super().setValues(STATUS, [status])


async def serve(args):
    global DEV  # pylint: disable=global-statement
    DEV = Device(args.hw, args.version, args.size, args.process_running)
    regs = Registers(0, [0] * 200)
    regs.put_u32(RUNNING_LENGTH, len(DEV.running))
    regs.setValues(INTERLOCK, [1 if args.process_running else 0])
    regs.setValues(STATUS, [IDLE])
    DEV.regs = regs
    slave = ModbusSlaveContext(hr=regs, ir=regs, zero_mode=True)
    context = ModbusServerContext(slaves={args.unit: slave}, single=False)
    ident = ModbusDeviceIdentification(
        info_name={
            "VendorName": "pymodbus-peer",
            "ProductCode": args.hw,
            "MajorMinorRevision": args.version,
        }
    )
    sha = hashlib.sha256(DEV.running).hexdigest()
    if args.tcp is not None:
        from pymodbus.server.async_io import ModbusTcpServer  # pylint: disable=import-outside-toplevel

        server = ModbusTcpServer(context, identity=ident, address=("127.0.0.1", args.tcp))
        DEV.identity = server.control.Identity
        task = asyncio.create_task(server.serve_forever())
        await server.serving
        port = server.server.sockets[0].getsockname()[1]
    else:
        from pymodbus.server.async_io import ModbusSerialServer  # pylint: disable=import-outside-toplevel

        server = ModbusSerialServer(
            context, framer=ModbusRtuFramer, identity=ident, port=args.rtu, baudrate=args.baud, timeout=0.005
        )
        DEV.identity = server.control.Identity
        await server.start()
        task = asyncio.create_task(server.serve_forever())
        port = 0
    print(f"READY port={port} running_sha256={sha}", flush=True)
    await task


def client(args):
    if args.tcp_addr:
        from pymodbus.client import ModbusTcpClient  # pylint: disable=import-outside-toplevel

        host, port = args.tcp_addr.rsplit(":", 1)
        c = ModbusTcpClient(host, port=int(port), timeout=3)
    else:
        from pymodbus.client import ModbusSerialClient  # pylint: disable=import-outside-toplevel

        c = ModbusSerialClient(args.rtu, framer=ModbusRtuFramer, baudrate=args.baud, timeout=3)
    if not c.connect():
        sys.exit("connect failed")
    u = args.unit

    def run(req):
        resp = c.execute(req)
        if resp is None or resp.isError():
            sys.exit(f"{req}: {resp}")
        return resp

    if args.push:
        img = open(args.push, "rb").read()
        if len(img) % 2:
            img += b"\0"
        start = time.monotonic()
        for off in range(0, len(img), 244):
            reg = off // 2
            chunk = img[off : off + 244]
            chunk = chunk[: min(len(chunk), (RECORDS - reg % RECORDS) * 2)]
            rec = FileRecord(file_number=FILE_BASE + reg // RECORDS, record_number=reg % RECORDS, record_data=chunk)
            run(WriteFileRecordRequest([rec], unit=u))
        print(json.dumps({"seconds": time.monotonic() - start, "bytes": len(img)}))
        return

    info = run(ReadDeviceInformationRequest(read_code=0x01, object_id=0x00, unit=u)).information
    regs = run(ReadHoldingRegistersRequest(100, 12, unit=u)).registers
    head = run(ReadFileRecordRequest([FileRecord(file_number=BACKUP_BASE, record_number=0, record_length=32)], unit=u))
    probe = bytes(range(16))
    run(WriteFileRecordRequest([FileRecord(file_number=FILE_BASE, record_number=5, record_data=probe)], unit=u))
    back = run(ReadFileRecordRequest([FileRecord(file_number=FILE_BASE, record_number=5, record_length=8)], unit=u))
    print(
        json.dumps(
            {
                "identity": {str(k): v.decode() for k, v in info.items()},
                "registers": regs,
                "running_head": head.records[0].record_data.hex(),
                "probe_back": back.records[0].record_data.hex(),
            }
        )
    )
    c.close()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--tcp", type=int, help="listen on 127.0.0.1:PORT (0: any free port)")
    s.add_argument("--rtu", help="serve RTU on this serial port")
    s.add_argument("--baud", type=int, default=115200)
    s.add_argument("--unit", type=int, default=1)
    s.add_argument("--hw", required=True)
    s.add_argument("--version", default="1.0.0")
    s.add_argument("--size", type=int, default=3000, help="size of the factory running image")
    s.add_argument("--process-running", action="store_true")
    c = sub.add_parser("client")
    c.add_argument("--tcp", dest="tcp_addr", help="host:port")
    c.add_argument("--rtu", help="serial port")
    c.add_argument("--baud", type=int, default=115200)
    c.add_argument("--unit", type=int, default=1)
    c.add_argument("--push", help="write this image file with 0x15 and report the time")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if args.mode == "serve":
        if (args.tcp is None) == (args.rtu is None):
            p.error("serve needs exactly one of --tcp, --rtu")
        asyncio.run(serve(args))
    else:
        if (args.tcp_addr is None) == (args.rtu is None):
            p.error("client needs exactly one of --tcp, --rtu")
        client(args)


if __name__ == "__main__":
    main()
